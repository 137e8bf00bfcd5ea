"""A page's own structured data mapped to a schema: JSON-LD, microdata, HTML tables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from skopd.content.structured import structured_items

PAGES = Path(__file__).parent / "sites" / "pages"
URL = "https://shop.example/catalogue/garden/"

PRODUCT = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "price": {"type": "number"},
        "url": {"type": "string"},
        "in_stock": {"type": "boolean"},
    },
    "required": ["name", "price"],
}


def page(*scripts: Any, body: str = "") -> str:
    tags = "".join(f'<script type="application/ld+json">{json.dumps(s)}</script>' for s in scripts)
    return f"<html><head>{tags}</head><body>{body}</body></html>"


def test_jsonld_graph_with_a_list_of_products() -> None:
    html = page(
        {
            "@context": "https://schema.org",
            "@graph": [
                {"@type": "Organization", "name": "Garden Shop", "url": "https://shop.example/"},
                {
                    "@type": "ItemList",
                    "itemListElement": [
                        {
                            "@type": "Product",
                            "name": "Rake",
                            "url": "https://shop.example/rake",
                            "offers": {"@type": "Offer", "price": "19.90", "priceCurrency": "EUR"},
                        },
                        {
                            "@type": "Product",
                            "name": "Spade",
                            "offers": [{"@type": "Offer", "price": 24}],
                        },
                    ],
                },
            ],
        }
    )
    assert structured_items(html, URL, {"type": "array", "items": PRODUCT}) == [
        {"name": "Rake", "price": 19.9, "url": "https://shop.example/rake"},
        {"name": "Spade", "price": 24.0},
    ]


def test_jsonld_top_level_list_and_synonyms() -> None:
    html = page(
        [
            {"@type": "NewsArticle", "headline": "Budget adopted", "datePublished": "2024-12-03"},
            {"@type": "NewsArticle", "headline": "New timetable", "datePublished": "2024-11-20"},
        ]
    )
    schema = {
        "type": "object",
        "properties": {"title": {"type": "string"}, "date": {"type": "string"}},
    }
    assert structured_items(html, URL, schema) == [
        {"title": "Budget adopted", "date": "2024-12-03"},
        {"title": "New timetable", "date": "2024-11-20"},
    ]


def test_an_item_that_fills_too_little_is_not_taken() -> None:
    html = (PAGES / "council_minutes.html").read_bytes()
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "start_date": {"type": "string"}},
    }
    # The Organization and the Place have a name only; the Event has both.
    assert structured_items(html, URL, schema) == [
        {"name": "Sitzung des Gemeinderats", "start_date": "2024-03-14T18:00:00+01:00"}
    ]


def test_without_schema_the_items_as_given() -> None:
    html = (PAGES / "council_minutes.html").read_bytes()
    items = structured_items(html, URL, None)
    # the top-level items of the @graph; the Place is inside the Event
    assert [i["@type"] for i in items] == ["Organization", "Event"]
    assert items[1]["location"] == {"@type": "Place", "name": "Rathaus, Großer Saal"}
    assert all("@context" not in i for i in items)


def test_broken_jsonld_is_skipped() -> None:
    html = '<script type="application/ld+json">{"@type": "Product", "name": </script>' + page(
        {"@type": "Product", "name": "Hoe", "offers": {"price": "9,50 €"}}
    )
    assert structured_items(html, URL, PRODUCT) == [{"name": "Hoe", "price": 9.5}]


MICRODATA = """
<div itemscope itemtype="https://schema.org/Product">
  <h2 itemprop="name">Watering can</h2>
  <a itemprop="url" href="/can-10l">details</a>
  <div itemprop="offers" itemscope itemtype="https://schema.org/Offer">
    <meta itemprop="price" content="12.50"><span itemprop="priceCurrency">EUR</span>
    <link itemprop="availability" href="https://schema.org/InStock">
  </div>
</div>
<div itemscope itemtype="https://schema.org/Product">
  <h2 itemprop="name">Hose</h2>
  <div itemprop="offers" itemscope itemtype="https://schema.org/Offer">
    <span itemprop="price">1.299,00</span>
  </div>
</div>
"""


def test_microdata_items_with_nested_offers() -> None:
    items = structured_items(page(body=MICRODATA), URL, PRODUCT)
    assert items == [
        {"name": "Watering can", "price": 12.5, "url": "https://shop.example/can-10l"},
        {"name": "Hose", "price": 1299.0},
    ]


def test_microdata_without_schema() -> None:
    items = structured_items(page(body=MICRODATA), URL, None)
    assert items[0]["@type"] == "Product"
    assert items[0]["offers"]["@type"] == "Offer"
    assert items[0]["offers"]["availability"] == "https://schema.org/InStock"


TABLE = """
<table>
  <thead><tr><th>Item Name</th><th>Price (EUR)</th><th>In stock</th><th>Notes</th></tr></thead>
  <tbody>
    <tr><td><a href="/rake">Rake</a></td><td>19,90</td><td>yes</td><td>-</td></tr>
    <tr><td><a href="/spade">Spade</a></td><td>24.00</td><td>no</td><td>sale</td></tr>
    <tr><td>Broken row</td><td>ask us</td><td>yes</td><td></td></tr>
  </tbody>
</table>
"""


def test_table_columns_mapped_by_field_name() -> None:
    schema = {
        "type": "object",
        "properties": {
            "item_name": {"type": "string"},
            "price_eur": {"type": "number"},
            "In Stock": {"type": "boolean"},
            "link": {"type": "string"},
        },
        "required": ["item_name", "price_eur"],
    }
    assert structured_items(page(body=TABLE), URL, schema) == [
        {
            "item_name": "Rake",
            "price_eur": 19.9,
            "In Stock": True,
            "link": "https://shop.example/rake",
        },
        {
            "item_name": "Spade",
            "price_eur": 24.0,
            "In Stock": False,
            "link": "https://shop.example/spade",
        },
    ]


def test_table_header_synonyms_and_first_row_header() -> None:
    html = (PAGES / "council_minutes.html").read_bytes()
    schema = {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "top": {"type": "integer"},
                "title": {"type": "string"},
                "beschluss": {"type": "string"},
            },
        },
    }
    # "TOP" and "Beschluss" by name; "title" does not match "Gegenstand": left out
    assert structured_items(html, URL, schema) == [
        {"top": 1, "beschluss": "einstimmig angenommen"},
        {"top": 2, "beschluss": "angenommen (15:2)"},
        {"top": 3, "beschluss": "vertagt"},
    ]


def test_best_source_wins() -> None:
    html = page({"@type": "Product", "name": "Rake"}, body=TABLE)
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "price": {"type": "number"}},
    }
    # JSON-LD has a name only; the table has name and price for two rows
    items = structured_items(html, URL, schema)
    assert items == [{"name": "Rake", "price": 19.9}, {"name": "Spade", "price": 24.0}]


def test_nothing_fits() -> None:
    schema = {"type": "object", "properties": {"isbn": {"type": "string"}}}
    html = (PAGES / "council_minutes.html").read_bytes()
    assert structured_items(html, URL, schema) == []
    assert structured_items(b"", URL, schema) == []
    assert structured_items(html, URL, {"type": "object"}) == []


def test_jsonld_article_with_nested_author() -> None:
    html = (PAGES / "wordpress_post.html").read_bytes()
    schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "published": {"type": "string"},
            "author": {"type": "string"},
        },
    }
    assert structured_items(html, URL, schema) == [
        {
            "title": "Road works on Mill Lane from 3 June",
            "published": "2024-05-20T09:12:00+01:00",
            "author": "Parish Clerk",
        }
    ]


def test_a_two_column_table_or_a_definition_list_is_one_item() -> None:
    table = """<h1>Watering can</h1><table>
      <tr><th>Name:</th><td>Watering can 10 l</td></tr>
      <tr><th>Price</th><td>EUR 12,50</td></tr>
      <tr><th>Weight</th><td>0.8 kg</td></tr>
      <tr><th>Manual</th><td><a href="/manuals/can.pdf">PDF</a></td></tr></table>"""
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "price": {"type": "number"},
            "link": {"type": "string"},
        },
    }
    assert structured_items(page(body=table), URL, schema) == [
        {"name": "Watering can 10 l", "price": 12.5}
    ]
    dl = """<dl><dt>Title</dt><dd>Annual report 2024</dd><dt>Published</dt><dd>3 March 2025</dd>
      <dt>Link</dt><dd><a href="/files/report-2024.pdf">download</a></dd></dl>"""
    schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "date": {"type": "string"},
            "link": {"type": "string"},
        },
    }
    assert structured_items(page(body=dl), URL, schema) == [
        {
            "title": "Annual report 2024",
            "date": "3 March 2025",
            "link": "https://shop.example/files/report-2024.pdf",
        }
    ]


def test_tables_with_the_same_columns_are_one_listing() -> None:
    def section(title: str, rows: list[tuple[str, str]]) -> str:
        body = "".join(f"<tr><td>{name}</td><td>{price}</td></tr>" for name, price in rows)
        return f"<h2>{title}</h2><table><tr><th>Name</th><th>Price</th></tr>{body}</table>"

    html = page(
        body=section("Rakes", [("Rake", "19.90"), ("Leaf rake", "14.00")])
        + section("Spades", [("Spade", "24.00")])
        + "<table><tr><th>Name</th><th>Opening hours</th></tr><tr><td>Shop</td><td>9-18</td></tr>"
        "</table>"
    )
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "price": {"type": "number"}},
        "required": ["price"],
    }
    assert structured_items(html, URL, schema) == [
        {"name": "Rake", "price": 19.9},
        {"name": "Leaf rake", "price": 14.0},
        {"name": "Spade", "price": 24.0},
    ]


def test_the_page_itself_from_its_meta_tags() -> None:
    html = """<html><head><title>Budget 2025 | Town of Oakvale</title>
    <meta property="og:title" content="Budget 2025 adopted">
    <meta name="description" content="The council adopted the 2025 budget.">
    <meta property="og:image" content="/img/budget.png">
    <meta property="article:published_time" content="2024-12-03T18:00:00Z">
    <link rel="canonical" href="/news/budget-2025"></head><body><p>Text</p></body></html>"""
    schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "summary": {"type": "string"},
            "published": {"type": "string"},
            "image": {"type": "string"},
            "url": {"type": "string"},
        },
        "required": ["title"],
    }
    assert structured_items(html, "https://oakvale.example/news/budget", schema) == [
        {
            "title": "Budget 2025 adopted",
            "summary": "The council adopted the 2025 budget.",
            "published": "2024-12-03T18:00:00Z",
            "image": "https://oakvale.example/img/budget.png",
            "url": "https://oakvale.example/news/budget-2025",
        }
    ]


def test_page_meta_does_not_beat_a_listing() -> None:
    html = page(body=TABLE).replace(
        "<head>", '<head><meta property="og:title" content="Garden tools">', 1
    )
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "price": {"type": "number"}},
    }
    assert [i["name"] for i in structured_items(html, URL, schema)] == ["Rake", "Spade"]
    # and the page's title alone is not a product
    alone = page(body="<p>No listing</p>").replace(
        "<head>", '<head><meta property="og:title" content="Garden tools">', 1
    )
    assert structured_items(alone, URL, schema) == []


def test_jsonld_references_inside_a_graph_are_followed() -> None:
    site = "https://oakvale.example/"
    html = page(
        {
            "@context": "https://schema.org",
            "@graph": [
                {
                    "@type": "Article",
                    "@id": f"{site}news/budget/#article",
                    "headline": "Budget 2025 adopted",
                    "datePublished": "2024-12-03",
                    "author": {"@id": f"{site}#/schema/person/1"},
                    "isPartOf": {"@id": f"{site}news/budget/"},
                },
                {"@type": "WebPage", "@id": f"{site}news/budget/", "url": f"{site}news/budget/"},
                {"@type": "Person", "@id": f"{site}#/schema/person/1", "name": "Parish Clerk"},
            ],
        }
    )
    schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "date": {"type": "string"},
            "author": {"type": "string"},
        },
        "required": ["title"],
    }
    assert structured_items(html, URL, schema) == [
        {"title": "Budget 2025 adopted", "date": "2024-12-03", "author": "Parish Clerk"}
    ]


RDFA = """
<div vocab="https://schema.org/" typeof="Event">
  <h2 property="name">Parish council meeting</h2>
  <p>On <time property="startDate" datetime="2024-06-12T19:00">12 June, 7 pm</time> in the
  <span property="location" typeof="Place"><span property="name">Village hall</span></span>.</p>
  <a property="url" href="/meetings/2024-06-12">Agenda</a>
</div>
<div typeof="schema:Event"><span property="schema:name">Annual parish meeting</span>
  <meta property="schema:startDate" content="2024-05-15"></div>
"""


def test_rdfa_lite_items() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "start_date": {"type": "string"},
            "location": {"type": "string"},
            "url": {"type": "string"},
        },
        "required": ["name", "start_date"],
    }
    assert structured_items(page(body=RDFA), URL, schema) == [
        {
            "name": "Parish council meeting",
            "start_date": "2024-06-12T19:00",
            "location": "Village hall",
            "url": "https://shop.example/meetings/2024-06-12",
        },
        {"name": "Annual parish meeting", "start_date": "2024-05-15"},
    ]
    assert [i["@type"] for i in structured_items(page(body=RDFA), URL, None)] == ["Event"] * 2


def test_deep_pages_do_not_overflow_the_stack() -> None:
    body = "<div itemscope itemtype='https://schema.org/Product'>" + "<div>" * 1800
    body += "<span itemprop='name'>Deep rake</span>" + "</div>" * 1800 + "</div>"
    schema = {"type": "object", "properties": {"name": {"type": "string"}}}
    assert structured_items(page(body=body), URL, schema) == [{"name": "Deep rake"}]
