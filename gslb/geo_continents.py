"""Country → continent, for databases whose records carry a country but no continent.

IPinfo's country databases and some third-party mmdb files give only an ISO 3166-1 alpha-2
code; steering by continent still needs the continent. The table follows the convention
the MaxMind GeoIP2/GeoLite2 databases use (so a record reads the same whichever database
it came from): it was taken from the country/continent pairs found in a GeoLite2-City
database, where every country maps to exactly one continent — Turkey, Georgia, Armenia,
Azerbaijan and Kazakhstan to Asia, Russia and Cyprus to Europe. It holds all 249 ISO
3166-1 codes plus XK (Kosovo), which the GeoIP databases use.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

CONTINENTS: frozenset[str] = frozenset({"AF", "AN", "AS", "EU", "NA", "OC", "SA"})


def _expand(groups: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(
        {country: continent for continent, codes in groups.items() for country in codes.split()}
    )


COUNTRY_CONTINENT: Mapping[str, str] = _expand(
    {
        # Africa
        "AF": (
            "AO BF BI BJ BW CD CF CG CI CM CV DJ DZ EG EH ER ET GA GH GM GN GQ GW KE KM LR LS LY "
            "MA MG ML MR MU MW MZ NA NE NG RE RW SC SD SH SL SN SO SS ST SZ TD TG TN TZ UG YT ZA "
            "ZM ZW"
        ),
        # Antarctica
        "AN": "AQ BV GS HM TF",
        # Asia
        "AS": (
            "AE AF AM AZ BD BH BN BT CC CN CX GE HK ID IL IN IO IQ IR JO JP KG KH KP KR KW KZ LA "
            "LB LK MM MN MO MV MY NP OM PH PK PS QA SA SG SY TH TJ TM TR TW UZ VN YE"
        ),
        # Europe
        "EU": (
            "AD AL AT AX BA BE BG BY CH CY CZ DE DK EE ES FI FO FR GB GG GI GR HR HU IE IM IS IT "
            "JE LI LT LU LV MC MD ME MK MT NL NO PL PT RO RS RU SE SI SJ SK SM UA VA XK"
        ),
        # North America
        "NA": (
            "AG AI AW BB BL BM BQ BS BZ CA CR CU CW DM DO GD GL GP GT HN HT JM KN KY LC MF MQ MS "
            "MX NI PA PM PR SV SX TC TT US VC VG VI"
        ),
        # Oceania
        "OC": "AS AU CK FJ FM GU KI MH MP NC NF NR NU NZ PF PG PN PW SB TK TL TO TV UM VU WF WS",
        # South America
        "SA": "AR BO BR CL CO EC FK GF GY PE PY SR UY VE",
    }
)


def continent_of(country: str | None) -> str | None:
    """The continent code of an ISO alpha-2 country code (upper case), None when unknown."""
    if country is None:
        return None
    return COUNTRY_CONTINENT.get(country)
