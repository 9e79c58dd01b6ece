"""medcrawl: harvest images from the web and PDFs and label them medical / non-medical."""

__version__ = "0.1.0"
