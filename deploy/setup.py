"""The egg scrapyd-deploy uploads: the medcrawl package and its Scrapy settings entry point (no model)."""

from setuptools import find_packages, setup

setup(
    name="medcrawl",
    version="0.1.0",
    packages=find_packages(include=["medcrawl", "medcrawl.*"]),   # ./medcrawl links to ../medcrawl
    entry_points={"scrapy": ["settings = medcrawl.settings"]},
)
