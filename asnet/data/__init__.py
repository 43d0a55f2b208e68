"""asnet.data"""
