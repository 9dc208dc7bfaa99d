"""Independent reference computations the tests compare the platform's engines against."""
