"""The offline copywriter's phrasebooks: Spanish, German and French nouns, values and sentence frames.

Their phrasings were chosen so no word has to agree with the product's grammatical gender ("de color
azul", "in Blau", "coloris bleu"); ``product_copy`` fills them with a product's attributes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Phrasebook:
    """One language: nouns, the forms of each value per slot, and the sentence frames."""

    nouns: dict[str, str]  # catalogue noun -> noun as a title starts it
    values: dict[str, dict[str, str]]  # kind -> normalised value -> phrase in that slot
    title: str  # frame over {noun} {colour} {pattern} {details}
    detail_join: str  # joins "with long sleeves" and "with a collar"
    sentences: list[str]  # description frames; a frame naming a missing slot is skipped
    bullets: dict[str, str]  # kind -> bullet frame over {value}
    extra_bullets: list[str]
    keyword_frames: list[str]
    extra_keywords: list[str]
    meta_closing: str


_SPANISH = Phrasebook(
    nouns={"shirt": "Camisa", "t-shirt": "Camiseta", "product": "Prenda"},
    values={
        "colour": {
            "blue": "azul",
            "white": "blanco",
            "black": "negro",
            "red": "rojo",
            "green": "verde",
            "grey": "gris",
        },
        "pattern": {"printed": "estampado", "solid": "liso", "striped": "de rayas", "checked": "de cuadros"},
        "sleeves": {
            "long sleeves": "con manga larga",
            "short sleeves": "con manga corta",
            "sleeveless": "sin mangas",
            "three quarter sleeves": "con manga tres cuartos",
        },
        "neck": {
            "spread collar": "con cuello italiano",
            "mandarin collar": "con cuello mao",
            "round neck": "con cuello redondo",
            "polo collar": "con cuello polo",
            "v neck": "con cuello de pico",
        },
        "fit": {"regular fit": "corte regular", "slim fit": "corte entallado"},
        "fabric": {
            "cotton": "algodón",
            "polyester": "poliéster",
            "synthetic": "fibra sintética",
            "blended": "mezcla de fibras",
        },
    },
    title="{noun} de color {colour} {details}",
    detail_join=" y ",
    sentences=[
        "{noun} de color {colour} {details}.",
        "Pensada para el día a día.",
        "El diseño {pattern} aporta carácter sin esfuerzo.",
        "El tejido de {fabric} resulta agradable sobre la piel y es fácil de cuidar.",
        "Su {fit} sienta bien de la mañana a la noche.",
        "Una prenda versátil para la oficina, el fin de semana o una salida con amigos.",
    ],
    bullets={
        "colour": "Color {value}",
        "pattern": "Diseño {value}",
        "sleeves": "{value}",
        "neck": "{value}",
        "fit": "{value} que acompaña cada movimiento",
        "fabric": "Tejido de {value}, fácil de cuidar",
    },
    extra_bullets=["Fácil de combinar", "Para llevar a diario", "Cómoda de la mañana a la noche"],
    keyword_frames=[
        "{noun}",
        "{noun} color {colour}",
        "{noun} con diseño {pattern}",
        "{noun} de {fabric}",
        "{noun} {sleeves}",
        "{noun} {fit}",
    ],
    extra_keywords=[
        "ropa casual",
        "moda para cada día",
        "básicos de armario",
        "estilo diario",
        "moda versátil",
    ],
    meta_closing="Versatilidad y comodidad para cada día.",
)

_GERMAN = Phrasebook(
    nouns={"shirt": "Hemd", "t-shirt": "T-Shirt", "product": "Produkt"},
    values={
        "colour": {
            "blue": "Blau",
            "white": "Weiß",
            "black": "Schwarz",
            "red": "Rot",
            "green": "Grün",
            "grey": "Grau",
        },
        "pattern": {
            "printed": "bedruckt",
            "solid": "unifarben",
            "striped": "gestreift",
            "checked": "kariert",
        },
        "sleeves": {
            "long sleeves": "mit langen Ärmeln",
            "short sleeves": "mit kurzen Ärmeln",
            "sleeveless": "ohne Ärmel",
            "three quarter sleeves": "mit Dreiviertelärmeln",
        },
        "neck": {
            "spread collar": "mit Haifischkragen",
            "mandarin collar": "mit Stehkragen",
            "round neck": "mit Rundhalsausschnitt",
            "polo collar": "mit Polokragen",
            "v neck": "mit V-Ausschnitt",
        },
        "fit": {"regular fit": "Regular Fit", "slim fit": "Slim Fit"},
        "fabric": {
            "cotton": "Baumwolle",
            "polyester": "Polyester",
            "synthetic": "Synthetikfasern",
            "blended": "Mischgewebe",
        },
    },
    title="{noun} in {colour} {details}",
    detail_join=" und ",
    sentences=[
        "{noun} in {colour} {details}.",
        "Gemacht für jeden Tag.",
        "Das Design ist {pattern} und lässt sich leicht kombinieren.",
        "Der Stoff aus {fabric} fühlt sich angenehm auf der Haut an und ist pflegeleicht.",
        "Im {fit} geschnitten, sitzt es vom Morgen bis zum Abend bequem.",
        "Ein vielseitiges Teil für das Büro, das Wochenende oder den Abend mit Freunden.",
    ],
    bullets={
        "colour": "Farbe: {value}",
        "pattern": "Design: {value}",
        "sleeves": "{value}",
        "neck": "{value}",
        "fit": "Passform: {value}",
        "fabric": "Material: {value}, pflegeleicht",
    },
    extra_bullets=["Leicht zu kombinieren", "Für jeden Tag", "Angenehm vom Morgen bis zum Abend"],
    keyword_frames=["{noun}", "{noun} {colour}", "{noun} {pattern}", "{noun} {fabric}", "{noun} {fit}"],
    extra_keywords=["Freizeitmode", "Alltagsmode", "Basics", "Lässiger Stil", "Vielseitige Mode"],
    meta_closing="Bequem, vielseitig und leicht zu kombinieren.",
)

_FRENCH = Phrasebook(
    nouns={"shirt": "Chemise", "t-shirt": "T-shirt", "product": "Article"},
    values={
        "colour": {
            "blue": "bleu",
            "white": "blanc",
            "black": "noir",
            "red": "rouge",
            "green": "vert",
            "grey": "gris",
        },
        "pattern": {"printed": "imprimé", "solid": "uni", "striped": "à rayures", "checked": "à carreaux"},
        "sleeves": {
            "long sleeves": "à manches longues",
            "short sleeves": "à manches courtes",
            "sleeveless": "sans manches",
            "three quarter sleeves": "à manches trois-quarts",
        },
        "neck": {
            "spread collar": "à col italien",
            "mandarin collar": "à col mao",
            "round neck": "à col rond",
            "polo collar": "à col polo",
            "v neck": "à col en V",
        },
        "fit": {"regular fit": "droite", "slim fit": "ajustée"},
        "fabric": {
            "cotton": "coton",
            "polyester": "polyester",
            "synthetic": "fibres synthétiques",
            "blended": "tissu mélangé",
        },
    },
    title="{noun} coloris {colour} {details}",
    detail_join=" et ",
    sentences=[
        "{noun} coloris {colour} {details}.",
        "À porter au quotidien.",
        "Son motif {pattern} apporte du caractère sans effort.",
        "Sa matière en {fabric} est agréable à porter et facile d'entretien.",
        "Sa coupe {fit} tombe bien du matin au soir.",
        "Une pièce polyvalente pour le bureau, le week-end ou une soirée entre amis.",
    ],
    bullets={
        "colour": "Coloris {value}",
        "pattern": "Motif {value}",
        "sleeves": "{value}",
        "neck": "{value}",
        "fit": "Coupe {value}",
        "fabric": "Matière en {value}, facile d'entretien",
    },
    extra_bullets=["Facile à associer", "Pour tous les jours", "Confortable du matin au soir"],
    keyword_frames=[
        "{noun}",
        "{noun} coloris {colour}",
        "{noun} motif {pattern}",
        "{noun} en {fabric}",
        "{noun} {sleeves}",
        "{noun} coupe {fit}",
    ],
    extra_keywords=["mode casual", "mode au quotidien", "basiques", "style décontracté", "mode polyvalente"],
    meta_closing="Confort et style au quotidien.",
)

PHRASEBOOKS = {"es": _SPANISH, "de": _GERMAN, "fr": _FRENCH}
