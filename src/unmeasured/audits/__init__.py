"""unmeasured.audits"""
