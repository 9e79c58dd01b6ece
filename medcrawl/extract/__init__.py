"""Finding images in HTML pages and PDFs, for the spider and the CLI; imports medcrawl.items and medcrawl.model only, never Scrapy or Twisted."""
