"""asnet.spa"""
