"""Helpers shared by the tests: factories of tiny models, the service, the store and the web.

Test modules and conftests import from here; no test module imports another test module
or a conftest. Fixtures used in more than one test folder are defined here and exposed
by the conftest of each folder that uses them.
"""
