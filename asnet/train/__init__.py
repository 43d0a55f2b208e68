"""asnet.train"""
