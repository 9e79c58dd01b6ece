"""What the tests share: local servers, crawl runners, generated files and sites, model directories.

Imported as ``tests.support.<module>``; fixtures stay in ``tests/conftest.py``.
"""
