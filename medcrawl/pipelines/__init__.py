"""Item pipelines, in crawl order: store (download + keep bytes) -> classify -> dataset -> release."""
