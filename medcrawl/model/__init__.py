"""Images to verdicts (decode, classifier, batch labelling); imports only medcrawl.items, never Scrapy or Twisted."""
