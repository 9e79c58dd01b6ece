"""The egg scrapyd-deploy uploads: the medcrawl package and its Scrapy settings entry point (no model)."""

from setuptools import find_packages, setup

from medcrawl import __version__      # ./medcrawl links to ../medcrawl; its __init__ imports nothing

setup(
    name="medcrawl",
    version=__version__,
    packages=find_packages(include=["medcrawl", "medcrawl.*"]),   # ./medcrawl links to ../medcrawl
    entry_points={"scrapy": ["settings = medcrawl.settings"]},
)
