"""unmeasured.data"""
