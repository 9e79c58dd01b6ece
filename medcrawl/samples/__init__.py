"""Labelled sample images from installed packages, for the demo and training; imports the shared modules and medcrawl.model only, never Scrapy."""
