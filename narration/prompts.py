"""Prompts for the OpenAI-compatible providers, per detail level, mode and language."""

from __future__ import annotations

from narration.options import ALT_TEXT_MAX_CHARS, NarrationOptions

LANGUAGE_NAMES = {
    "ar": "Arabic", "bg": "Bulgarian", "ca": "Catalan", "cs": "Czech", "da": "Danish", "de": "German",
    "el": "Greek", "en": "English", "es": "Spanish", "et": "Estonian", "fa": "Persian", "fi": "Finnish",
    "fr": "French", "he": "Hebrew", "hi": "Hindi", "hr": "Croatian", "hu": "Hungarian", "id": "Indonesian",
    "it": "Italian", "ja": "Japanese", "ko": "Korean", "lt": "Lithuanian", "lv": "Latvian", "nb": "Norwegian",
    "nl": "Dutch", "no": "Norwegian", "pl": "Polish", "pt": "Portuguese", "ro": "Romanian", "ru": "Russian",
    "sk": "Slovak", "sl": "Slovenian", "sr": "Serbian", "sv": "Swedish", "th": "Thai", "tr": "Turkish",
    "uk": "Ukrainian", "vi": "Vietnamese", "zh": "Chinese",
}

SYSTEM = (
    "You describe photos for people who cannot see them. Your words will be read aloud by a speech "
    "synthesizer, so write plain spoken prose: no markdown, no headings, no bullet points or numbered "
    "lists, no emoji, no URLs. Never begin with 'This image shows', 'The image depicts' or a similar "
    "phrase: start with the subject itself. Only say what is visible; when something is uncertain, say "
    "so briefly. If the photo is blurry, very dark or unclear, say that honestly. Do not identify real "
    "people by name or guess anyone's identity, ethnicity or health; describe what they are doing and "
    "wearing instead. Describe nudity or violence in general, non-graphic terms."
)

DETAIL = {
    "brief": "Answer in one or two short sentences: the main subject and the single most important detail.",
    "standard": "Answer in a short paragraph of three to five sentences: the subject, the setting, notable "
                "details, any readable text, and the overall colours and light.",
    "detailed": "Answer in two or three paragraphs: the subject, the setting, foreground and background, "
                "people and what they are doing, every readable piece of text, colours, light and mood.",
}

MODE = {
    "scene": "Describe the scene.",
    "document": "The photo shows text: a page, sign, screen, label or similar. Read the text aloud as the "
                "main content, in reading order, exactly as written; skip nothing that is legible and say "
                "where text is cut off or unreadable. Mention the kind of document in one short phrase first.",
    "alt_text": f"Write alternative text for the photo: a single phrase or sentence of at most "
                f"{ALT_TEXT_MAX_CHARS} characters.",
}

# Amount of image detail requested from the API: low is a fixed 512 px view (cheap and fast).
IMAGE_DETAIL = {"brief": "low", "standard": "auto", "detailed": "high"}


def language_name(tag: str) -> str:
    base = tag.split("-")[0].lower()
    name = LANGUAGE_NAMES.get(base)
    if name is None:
        return f"the language with the code '{tag}'"
    region = tag.split("-")[1] if "-" in tag else ""
    return f"{name} ({region})" if region else name


def vision_prompt(options: NarrationOptions) -> tuple[str, str]:
    """(system prompt, user instruction) for a photo description."""
    parts = [MODE[options.mode]]
    if options.mode != "alt_text":
        parts.append(DETAIL[options.detail])
    parts.append(f"Write in {language_name(options.language)}.")
    return SYSTEM, " ".join(parts)


def image_detail(options: NarrationOptions) -> str:
    """The `detail` field of the image part: documents need every pixel, alt text very few."""
    if options.mode == "document":
        return "high"
    if options.mode == "alt_text":
        return "low"
    return IMAGE_DETAIL[options.detail]


def speech_instructions(options: NarrationOptions) -> str:
    """Voice direction for models that accept it (gpt-4o-mini-tts and later)."""
    return (
        "Speak clearly and warmly, at an even pace, like a narrator describing a photo to a listener "
        f"who cannot see it. The text is in {language_name(options.language)}."
    )
