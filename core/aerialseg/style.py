"""Styles that make outputs open coloured and labelled: GDAL colour tables, category names, QGIS QML."""

from __future__ import annotations

import json
from xml.sax.saxutils import escape, quoteattr

from aerialseg.card import NODATA_CLASS, ClassInfo, ModelCard

_QML_HEAD = (
    "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
    "<qgis version=\"3.22.0\" styleCategories=\"AllStyleCategories\">\n"
)


def colormap(card: ModelCard) -> dict[int, tuple[int, int, int, int]]:
    """GDAL colour table: class colours, transparent nodata."""
    table = {c.id: (*c.rgb, 255) for c in card.classes}
    table[NODATA_CLASS] = (0, 0, 0, 0)
    return table


def class_table_json(card: ModelCard) -> str:
    """The class table stored in a class raster's metadata (read back by ``raster.read_class_table``)."""
    return json.dumps([{"id": c.id, "name": c.name, "color": c.color} for c in card.classes])


def category_names_xml(card: ModelCard) -> str:
    """GDAL ``<Category>`` lines naming the classes, in id order (for ``.aux.xml`` sidecars and VRTs)."""
    return "".join(f"      <Category>{escape(c.name)}</Category>\n" for c in card.classes)


def category_aux_xml(card: ModelCard) -> str:
    """A GDAL PAM sidecar (``.aux.xml``) giving the band its category (class) names."""
    names = category_names_xml(card)
    return (
        "<PAMDataset>\n  <PAMRasterBand band=\"1\">\n    <Description>land cover class</Description>\n"
        f"    <CategoryNames>\n{names}    </CategoryNames>\n  </PAMRasterBand>\n</PAMDataset>\n"
    )


def raster_qml(card: ModelCard) -> str:
    """A QGIS paletted-renderer style with the class colours and names."""
    entries = "".join(
        f"        <paletteEntry value=\"{c.id}\" color=\"{c.color.lower()}\" "
        f"label={quoteattr(c.name)} alpha=\"255\"/>\n"
        for c in card.classes
    )
    return (
        f"{_QML_HEAD}  <pipe>\n"
        "    <rasterrenderer type=\"paletted\" band=\"1\" opacity=\"1\" alphaBand=\"-1\" nodataColor=\"\">\n"
        f"      <rasterTransparency/>\n      <colorPalette>\n{entries}      </colorPalette>\n"
        "    </rasterrenderer>\n  </pipe>\n  <blendMode>0</blendMode>\n</qgis>\n"
    )


def confidence_qml() -> str:
    """A QGIS greyscale style for a 0-100 % confidence raster."""
    return (
        f"{_QML_HEAD}  <pipe>\n"
        "    <rasterrenderer type=\"singlebandgray\" grayBand=\"1\" gradient=\"BlackToWhite\" "
        "opacity=\"1\" alphaBand=\"-1\">\n"
        "      <contrastEnhancement><minValue>0</minValue><maxValue>100</maxValue>"
        "<algorithm>StretchToMinimumMaximum</algorithm></contrastEnhancement>\n"
        "    </rasterrenderer>\n  </pipe>\n</qgis>\n"
    )


def polygon_qml(cls: ClassInfo) -> str:
    """A QGIS single-symbol fill style in the class colour (semi-transparent fill, solid outline)."""
    r, g, b = cls.rgb
    return (
        f"{_QML_HEAD}  <renderer-v2 type=\"singleSymbol\" symbollevels=\"0\" enableorderby=\"0\" forceraster=\"0\">\n"
        "    <symbols>\n      <symbol type=\"fill\" name=\"0\" alpha=\"1\" clip_to_extent=\"1\" force_rhr=\"0\">\n"
        "        <layer class=\"SimpleFill\" enabled=\"1\" locked=\"0\" pass=\"0\">\n"
        f"          <prop k=\"color\" v=\"{r},{g},{b},150\"/>\n"
        f"          <prop k=\"outline_color\" v=\"{r},{g},{b},255\"/>\n"
        "          <prop k=\"outline_style\" v=\"solid\"/>\n          <prop k=\"outline_width\" v=\"0.4\"/>\n"
        "          <prop k=\"outline_width_unit\" v=\"MM\"/>\n          <prop k=\"style\" v=\"solid\"/>\n"
        "        </layer>\n      </symbol>\n    </symbols>\n    <rotation/>\n    <sizescale/>\n  </renderer-v2>\n"
        f"  <layerGeometryType>2</layerGeometryType>\n</qgis>\n"
    )
