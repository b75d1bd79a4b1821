"""unmeasured.audits.membership"""
