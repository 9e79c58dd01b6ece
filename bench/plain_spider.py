"""The plain baseline: follow every link, hand each page's <img> URLs to Scrapy's ImagesPipeline."""

import scrapy


class PlainImagesSpider(scrapy.Spider):
    """``scrapy runspider bench/plain_spider.py -a start_url=URL``: no classifier, stock pipeline."""

    name = "plain"
    custom_settings = {"ITEM_PIPELINES": {"scrapy.pipelines.images.ImagesPipeline": 1}}

    def __init__(self, start_url: str = "", **kwargs):
        super().__init__(**kwargs)
        self.start_urls = [start_url]

    async def start(self):
        yield scrapy.Request(self.start_urls[0])          # filtered like medcrawl's seeds

    def parse(self, response):
        yield {"page": response.url,
               "image_urls": [response.urljoin(src) for src in response.css("img::attr(src)").getall()]}
        yield from response.follow_all(css="a::attr(href)", callback=self.parse)
