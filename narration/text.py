"""Small text helpers for writing to be heard: sentence splitting, markdown removal, English phrasing."""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9À-Ý])")
_MARKDOWN_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"```.*?```", re.S), " "),
    (re.compile(r"!\[([^\]]*)\]\([^)]*\)"), r"\1"),  # images
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),  # links
    (re.compile(r"^\s{0,3}#{1,6}\s*", re.M), ""),  # headings
    (re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+", re.M), ""),  # list markers
    (re.compile(r"^\s*>\s?", re.M), ""),  # quotes
    (re.compile(r"(\*\*|__|\*|_|`|~~)(?=\S)(.+?)(?<=\S)\1"), r"\2"),  # emphasis, code
    (re.compile(r"^\s*[-*_]{3,}\s*$", re.M), " "),  # rules
)
# Openers a listener doesn't need: "This image shows", "The photo depicts", "In this picture, ..."
_OPENERS = re.compile(
    r"^\s*(?:(?:this|the)\s+(?:image|photo|photograph|picture|pic)\s+(?:shows|depicts|features|displays|contains|is of)"
    r"|in\s+(?:this|the)\s+(?:image|photo|photograph|picture)\s*,?\s*(?:we\s+(?:can\s+)?see|there\s+(?:is|are))?)"
    r"\s*:?\s*",
    re.I,
)
_NUMBER_WORDS = (
    "no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
)


def split_sentences(text: str, max_chars: int = 400) -> list[str]:
    """Split at sentence ends; a sentence longer than max_chars is cut at commas, then spaces."""
    sentences = [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]
    out: list[str] = []
    for sentence in sentences:
        out.extend(_cut(sentence, max_chars))
    return out


def _cut(sentence: str, max_chars: int) -> list[str]:
    if len(sentence) <= max_chars:
        return [sentence]
    parts: list[str] = []
    rest = sentence
    while len(rest) > max_chars:
        window = rest[:max_chars]
        cut = max(window.rfind(", "), window.rfind("; "))
        if cut < max_chars // 3:
            cut = window.rfind(" ")
        if cut <= 0:
            cut = max_chars
        parts.append(rest[: cut + 1].strip())
        rest = rest[cut + 1 :].strip()
    if rest:
        parts.append(rest)
    return parts


def group_sentences(sentences: list[str], max_chars: int) -> list[str]:
    """Pack whole sentences into chunks of at most max_chars (for APIs with an input limit)."""
    chunks: list[str] = []
    for sentence in sentences:
        if chunks and len(chunks[-1]) + 1 + len(sentence) <= max_chars:
            chunks[-1] = f"{chunks[-1]} {sentence}"
        else:
            chunks.append(sentence)
    return chunks


def to_spoken(text: str) -> str:
    """Turn model output into plain prose for a listener: no markdown, no lists, no 'This image shows'."""
    for pattern, replacement in _MARKDOWN_PATTERNS:
        text = pattern.sub(replacement, text)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # List items and headings become sentences of their own.
    text = " ".join(capitalise(line) if line[-1] in ".!?:;,…\"'" else f"{capitalise(line)}." for line in lines)
    text = re.sub(r"\s+", " ", text).strip()
    sentences = []
    for sentence in _SENTENCE_END.split(text):
        stripped = _OPENERS.sub("", sentence, count=1).strip()
        if stripped:
            sentences.append(capitalise(stripped))
    return " ".join(sentences)


def truncate(text: str, limit: int) -> str:
    """Cut at a word boundary so the result fits `limit` characters, ending with a full stop."""
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(" ,;:-")
    return f"{cut}."


def article(noun: str) -> str:
    """'a' or 'an' for a noun phrase (by its first sound, roughly)."""
    word = noun.lower()
    if word.startswith(("hour", "honest", "heir")):
        return "an"
    if word[:1] in "aeiou" and not word.startswith(("uni", "use", "eu", "one")):
        return "an"
    return "a"


def with_article(noun: str) -> str:
    return f"{article(noun)} {noun}"


def number_word(n: int) -> str:
    return _NUMBER_WORDS[n] if 0 <= n < len(_NUMBER_WORDS) else str(n)


def join_words(items: list[str], conjunction: str = "and") -> str:
    """'a', 'a and b', 'a, b and c'."""
    if not items:
        return ""
    if len(items) == 1:
        return items[0]
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"


def capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]
