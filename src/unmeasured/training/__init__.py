"""unmeasured.training"""
