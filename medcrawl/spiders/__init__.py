"""medcrawl spiders: ``site`` (medcrawl.spiders.site.SiteSpider) harvests a site's images."""
