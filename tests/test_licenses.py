"""The licence normaliser on forms found on journal pages, badges, meta tags and PDF copyright lines."""

import pytest

from medcrawl.extract.licenses import license_in_text, spdx_id


@pytest.mark.parametrize("value, expected", [
    # creativecommons.org URLs: schemes, www, legalcode / deed pages, ports, trailing parts
    ("https://creativecommons.org/licenses/by/4.0/", "CC-BY-4.0"),
    ("http://creativecommons.org/licenses/by/4.0", "CC-BY-4.0"),
    ("//creativecommons.org/licenses/by-nc-sa/4.0/legalcode", "CC-BY-NC-SA-4.0"),
    ("https://www.creativecommons.org/licenses/by-nc-nd/4.0/deed.en", "CC-BY-NC-ND-4.0"),
    ("https://creativecommons.org/licenses/by-sa/3.0/", "CC-BY-SA-3.0"),
    ("http://creativecommons.org/licenses/by-nc/3.0/igo/", "CC-BY-NC-3.0"),
    ("https://creativecommons.org/licenses/by-nc-sa/3.0/igo/legalcode", "CC-BY-NC-SA-3.0-IGO"),
    ("http://creativecommons.org/licenses/by/3.0/de/", "CC-BY-3.0-DE"),
    ("http://creativecommons.org/licenses/by/3.0/es/deed.es", "CC-BY-3.0"),
    ("http://creativecommons.org/licenses/by-sa/2.0/uk/", "CC-BY-SA-2.0-UK"),
    ("http://creativecommons.org/licenses/by-nc-sa/2.0/fr/", "CC-BY-NC-SA-2.0-FR"),
    ("http://creativecommons.org/licenses/by/2.5/", "CC-BY-2.5"),
    ("https://creativecommons.org/licenses/by-nd/4.0/deed.fr", "CC-BY-ND-4.0"),
    ("https://creativecommons.org/licences/by/4.0/", "CC-BY-4.0"),
    ("https://creativecommons.org/publicdomain/zero/1.0/", "CC0-1.0"),
    ("http://creativecommons.org/publicdomain/zero/1.0/legalcode", "CC0-1.0"),
    ("https://creativecommons.org/publicdomain/mark/1.0/", "CC-PDM-1.0"),
    ("http://creativecommons.org/licenses/publicdomain/", "CC-PDDC"),
    # badge images
    ("https://i.creativecommons.org/l/by/4.0/88x31.png", "CC-BY-4.0"),
    ("https://i.creativecommons.org/l/by-nc-nd/3.0/88x31.png", "CC-BY-NC-ND-3.0"),
    ("https://licensebuttons.net/l/by-sa/4.0/80x15.png", "CC-BY-SA-4.0"),
    ("https://i.creativecommons.org/p/zero/1.0/88x31.png", "CC0-1.0"),
    # abbreviations and SPDX identifiers
    ("CC BY 4.0", "CC-BY-4.0"),
    ("CC-BY-4.0", "CC-BY-4.0"),
    ("cc-by-nc-sa-4.0", "CC-BY-NC-SA-4.0"),
    ("CC BY-NC-ND 4.0", "CC-BY-NC-ND-4.0"),
    ("CC BY NC 4.0", "CC-BY-NC-4.0"),
    ("CC BY-SA 3.0", "CC-BY-SA-3.0"),
    ("CC BY-NC-SA 3.0 IGO", "CC-BY-NC-SA-3.0-IGO"),
    ("cc_by_4.0", "CC-BY-4.0"),
    ("CC0", "CC0-1.0"),
    ("CC0 1.0 Universal", "CC0-1.0"),
    ("cc-zero", "CC0-1.0"),
    ("CC0-1.0", "CC0-1.0"),
    ("MIT", "MIT"),
    ("apache-2.0", "Apache-2.0"),
    # names as written on article pages and in dc.rights
    ("Creative Commons Attribution 4.0 International License", "CC-BY-4.0"),
    ("Creative Commons Attribution 4.0 International (CC BY 4.0)", "CC-BY-4.0"),
    ("Attribution-NonCommercial 4.0 International (CC BY-NC 4.0)", "CC-BY-NC-4.0"),
    ("Creative Commons Attribution-NonCommercial-NoDerivatives 4.0 International License",
     "CC-BY-NC-ND-4.0"),
    ("Creative Commons Attribution-NonCommercial-ShareAlike 3.0 Unported", "CC-BY-NC-SA-3.0"),
    ("Creative Commons Attribution-NoDerivs 3.0 Unported License", "CC-BY-ND-3.0"),
    ("Creative Commons Attribution Non-Commercial No Derivatives 4.0", "CC-BY-NC-ND-4.0"),
    ("Creative Commons Attribution-Share Alike 3.0", "CC-BY-SA-3.0"),
    ("CreativeCommons Attribution 2.0 Generic", "CC-BY-2.0"),
    ("Creative Commons Zero", "CC0-1.0"),
    ("Creative Commons Public Domain Mark 1.0", "CC-PDM-1.0"),
    ("  Creative Commons\n  Attribution\t4.0  ", "CC-BY-4.0"),
    # nothing, or not enough to name one licence
    ("", ""), (None, ""),
    ("All rights reserved", ""),
    ("© 2021 Elsevier B.V.", ""),
    ("https://www.example.org/terms-of-use", ""),
    ("Creative Commons Attribution License", ""),              # no version
    ("https://creativecommons.org/licenses/by/", ""),          # no version
    ("CC BY-ND-SA 4.0", ""),                                   # no such licence
    ("https://creativecommons.org/licenses/nc-sa/1.0/", ""),   # no attribution term
    ("Attribution 4.0", ""),                                   # not Creative Commons
    ("GPL", ""),
])
def test_spdx_id(value, expected):
    assert spdx_id(value) == expected


@pytest.mark.parametrize("text, expected", [
    ("Open Access This article is licensed under a Creative Commons Attribution 4.0 International "
     "License, which permits use, sharing, adaptation, distribution and reproduction in any medium.",
     ("CC-BY-4.0", "")),
    ("This is an open access article under the CC BY-NC-ND license "
     "(http://creativecommons.org/licenses/by-nc-nd/4.0/).",
     ("CC-BY-NC-ND-4.0", "http://creativecommons.org/licenses/by-nc-nd/4.0/")),
    ("distributed under the terms of the Creative Commons Attribution License "
     "(https://creativecommons.org/licenses/by/\n4.0/), which permits unrestricted use",
     ("CC-BY-4.0", "https://creativecommons.org/licenses/by/4.0/")),
    ("Licensed under CC BY-SA 4.0. See creativecommons.org/licenses/by-sa/4.0",
     ("CC-BY-SA-4.0", "https://creativecommons.org/licenses/by-sa/4.0")),
    ("Creative Commons Attribution 4.0 License which permits unrestricted non-commercial use",
     ("CC-BY-4.0", "")),
    ("This manual is under the GNU Free Documentation License.", ("", "")),
    ("Figure 3. A chest x-ray. Copyright 2020 the authors.", ("", "")),
    ("", ("", "")),
])
def test_license_in_text(text, expected):
    assert license_in_text(text) == expected
