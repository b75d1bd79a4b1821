"""unmeasured.targets"""
