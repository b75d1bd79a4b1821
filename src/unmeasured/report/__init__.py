"""unmeasured.report"""
