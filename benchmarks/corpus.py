"""Generate a synthetic archive in the real dump format, for benchmarks and scale tests.

Ten source folders, ids counting down like the real archive, bodies of 1-20 KB with images,
relative links and the occasional lazy image, times spread over five years, a few percent of
NaN epochs with a feedx body date.  Deterministic for a given seed.

    python benchmarks/corpus.py OUT_DIR COUNT [--seed N]
"""

from __future__ import annotations

import argparse
import os
import random
from pathlib import Path

SOURCES = ("voa", "nyt", "bbc", "BBC", "rfi", "dw", "rfa", "reuters", "ft", "cdt")
HOSTS = {
    "voa": "https://www.voachinese.com/a/",
    "nyt": "https://cn.nytimes.com/world/",
    "bbc": "https://www.bbc.com/zhongwen/simp/world-",
    "BBC": "http://www.bbc.com/zhongwen/simp/world-",
    "rfi": "https://www.rfi.fr/cn/",
    "dw": "https://www.dw.com/zh/a-",
    "rfa": "https://www.rfa.org/mandarin/",
    "reuters": "https://cn.reuters.com/article/",
    "ft": "https://cn.ft.com/story/",
    "cdt": "https://chinadigitaltimes.net/chinese/",
}
START = 1577836800  # 2020-01-01
SPAN = 5 * 365 * 86400
WORDS = [
    "美国",
    "中国",
    "台湾",
    "经济",
    "政府",
    "报道",
    "记者",
    "总统",
    "选举",
    "关系",
    "贸易",
    "政策",
    "国际",
    "新闻",
    "表示",
    "星期",
    "官员",
    "会谈",
]


def _paragraph(rng: random.Random, size: int) -> str:
    text = "".join(rng.choice(WORDS) for _ in range(size // 6)) + "。"
    return f"<p>{text}</p>"


def body(rng: random.Random, n: int) -> str:
    target = rng.randint(1024, 20 * 1024)
    parts = [
        f'<div><img src="https://images.weserv.nl/?url=img.example.org/{n}.jpg" width="100%">'
        "<small>图片说明</small></div>"
    ]
    size = 0
    while size < target:
        p = _paragraph(rng, rng.randint(200, 1200))
        if rng.random() < 0.2:
            p = p.replace("</p>", f'<a href="/a/{rng.randint(1, 10**6)}.html">相关</a></p>')
        if rng.random() < 0.1:
            p += (
                '<noscript><img src="/wp/lazy.png"></noscript><img class="lazyload" '
                'src="data:image/gif;base64,R0lGOD" data-src="/wp/lazy.png">'
            )
        parts.append(p)
        size += len(p.encode())
    return "".join(parts)


def dump_text(rng: random.Random, source: str, n: int, when: int) -> str:
    url = f"{HOSTS[source]}{n}.html"
    title = "".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12)))
    if rng.random() < 0.03:
        from email.utils import formatdate

        head = "<!--NaN-->"
        lead = f"<div><i>{formatdate(when, usegmt=True)}</i></div>"
    else:
        head = f"<!--{when * 1000}-->"
        lead = ""
    return f"{head}\n[{title}]({url})\n------\n\n{lead}{body(rng, n)}\n"


def generate(out: Path, count: int, *, seed: int = 1) -> None:
    rng = random.Random(seed)
    for source in SOURCES:
        (out / source).mkdir(parents=True, exist_ok=True)
    ident = 1048575
    for i in range(count):
        source = SOURCES[i % len(SOURCES)]
        when = START + rng.randrange(SPAN)
        path = out / source / f"{ident - i}.md"
        path.write_text(dump_text(rng, source, ident - i, when), encoding="utf-8")
        os.utime(path, (when, when))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("count", type=int)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    generate(args.out, args.count, seed=args.seed)


if __name__ == "__main__":
    main()
