"""One-off classification (CLI, inputs, safe fetching, writers, web page, demo); imports the shared modules, model and extract, never Scrapy."""
