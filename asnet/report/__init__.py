"""asnet.report"""
