"""`player web FILE.p4d -o SITE/`: the browser player as a static site, or one .html file.

The site is ``index.html``, the viewer's own ES modules and stylesheet (``player/web/``, no
third-party code) and the portrait. Browsers decode jpeg, webp and png tiles (16-bit depth png
with the page's own inflate-based decoder) but have no zstd, so a portrait with ``raw+zstd``
tiles is written as a browser copy: those kinds re-coded losslessly as png (the same pixels,
the same layout and version, ``tiles.codecs`` saying so); every other chunk is copied byte for byte.

``--single-file`` writes one self-contained ``.html``: the modules bundled into one script
(each in its own function scope) and the portrait inside as base64, for files up to
``MAX_SINGLE_FILE`` bytes (one attachment). Outputs are whole or absent
(``formats.atomic.atomic_path``; a folder is staged beside its target and renamed).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from formats.atomic import atomic_dir, atomic_path, check_writable_dir
from formats.errors import EXIT_OK, OneLineParser, UsageError, check_input_file

WEB = Path(__file__).resolve().parent / "web"
MAX_SINGLE_FILE = 32 << 20  # a portrait inside one .html: base64 makes it 4/3 larger, and mail caps ~25-50 MB
BROWSER_CODECS = {"color": ("jpeg", "webp", "png"), "alpha": ("png", "webp"), "depth": ("png", "webp"),
                  "normal": ("webp", "png")}


@dataclass(frozen=True)
class SiteConfig:
    file: Path
    """the portrait (.p4d) the site plays"""
    output: Path
    """the site folder to create, or with single_file the .html to write"""
    single_file: bool = False
    """one self-contained .html instead of a folder"""
    quiet: bool = False


def parser() -> OneLineParser:
    ap = OneLineParser(
        prog="player web", description="Write a static web page that plays FILE.p4d in any browser with WebGL2 "
        "(phones included): a folder to host with any static server (range requests are used where the server "
        "allows them), or one self-contained .html with --single-file.",
        epilog="the page takes URL parameters file, k, yaw, pitch, paused=1, seed, size, mode (see README)")
    ap.add_argument("file", metavar="FILE.p4d", help="the portrait")
    ap.add_argument("-o", "--output", required=True, metavar="SITE",
                    help="the folder to create (new or empty), or with --single-file the .html file to write")
    ap.add_argument("--single-file", action="store_true",
                    help=f"one .html with the portrait inside, for portraits up to {MAX_SINGLE_FILE >> 20} MiB")
    ap.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    return ap


def modules() -> list[Path]:
    """The viewer's ES modules, each after the modules it imports (main.js last)."""
    order: list[Path] = []

    def visit(p: Path) -> None:
        if p in order:
            return
        for dep in re.findall(r'^import .* from "\./([\w.]+)";$', p.read_text(), re.M):
            visit(p.parent / dep)
        order.append(p)
    visit(WEB / "js" / "main.js")
    return order


_IMPORT = re.compile(r'^import \{([^}]*)\} from "\./([\w]+)\.js";$', re.M)
_EXPORT = re.compile(r"^export (?:async )?(?:function|class|const|let) (\w+)", re.M)


def bundle() -> str:
    """All modules as one script: each module's body in a function scope that returns its
    exports; imports become destructuring of the imported module's object."""
    out = []
    for p in modules():
        src = p.read_text()
        names = _EXPORT.findall(src)
        body = _IMPORT.sub(lambda m: "const {" + m.group(1).replace(" as ", ": ") + "} = __p4d_" + m.group(2) + ";", src)
        body = re.sub(r"^export ", "", body, flags=re.M)
        if re.search(r"^(import|export)\b", body, re.M):
            raise RuntimeError(f"{p.name}: an import or export the bundler does not know")
        out.append(f"const __p4d_{p.stem} = (() => {{\n{body}\nreturn {{{', '.join(names)}}};\n}})();")
    return "\n".join(out)


def page(title: str, config: dict, style: str, script: str, data: str = "") -> str:
    html = (WEB / "index.html").read_text()
    # JSON inside <script>: "</" must not end the element.
    cfg = json.dumps(config).replace("</", "<\\/")
    for key, value in (("title", _escape(title)), ("style", style), ("config", cfg), ("data", data), ("script", script)):
        html = html.replace("{{" + key + "}}", value)
    return html


def _escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def browser_codecs(reader) -> dict[str, str]:
    """kind -> the codec the site's copy stores it in (png where the file's is not one browsers read)."""
    return {k: c if c in BROWSER_CODECS[k] else "png" for k, c in reader.codecs.items()}


def write_portrait(reader, out: Path) -> bool:
    """The portrait as the page reads it into ``out``: a byte copy, or the browser copy when
    some kind is raw+zstd (``browser_codecs``). Returns whether tiles were re-coded."""
    from formats.writer import P4DWriter
    want = browser_codecs(reader)
    if want == reader.codecs:
        shutil.copyfile(reader.path, out)
        return False
    meta = json.loads(json.dumps(reader.meta))
    meta["tiles"]["codecs"] = want
    # Chained files (format 1.3) stay chained: re-coded kinds are predicted anew (losslessly, the
    # same samples), copied chunks keep their flag.
    w = P4DWriter(out, depth_scale=reader.depth_scale, depth_bits=reader.depth_bits, chain=reader.chain)
    try:
        if reader.has_preview:
            w.set_preview(*reader.preview())
        for k in range(reader.n_keyframes):
            for v in range(reader.n_views):
                for kind in reader.kinds:
                    if want[kind] != reader.codecs[kind]:
                        w.add_tile(k, v, kind, reader.tile(k, v, kind), want[kind])
                    else:
                        codec, data = reader.tile_encoded(k, v, kind)
                        w.add_encoded(k, v, kind, data, codec, reader.kind_shape(kind),
                                      predicted=reader.predicted(k, v, kind))
        w.finish(meta)
    except BaseException:
        w.close()
        for p in (w.partial, w.journal_path):
            p.unlink(missing_ok=True)
        raise
    return True


def build(cfg: SiteConfig) -> tuple[Path, bool]:
    """Writes the site (or the single file); returns (its path, whether tiles were re-coded)."""
    from formats import P4DFormatError, P4DReader
    check_input_file(cfg.file)
    try:
        reader = P4DReader(cfg.file)
    except P4DFormatError as exc:
        raise UsageError(f"{cfg.file}: not a playable .p4d ({exc})") from None
    with reader:
        name = Path(cfg.file).name
        if cfg.single_file:
            if reader.file_size > MAX_SINGLE_FILE:
                raise UsageError(f"{cfg.file}: {reader.file_size / 2**20:.1f} MiB is over the single-file limit of "
                                 f"{MAX_SINGLE_FILE >> 20} MiB; write a folder instead (no --single-file)")
            if cfg.output.suffix.lower() not in (".html", ".htm"):
                raise UsageError(f"{cfg.output}: --single-file writes one .html file; give a name ending in .html")
            check_writable_dir(cfg.output)
            with tempfile.TemporaryDirectory() as tmp:
                copy = Path(tmp) / name
                recoded = write_portrait(reader, copy)
                data = base64.b64encode(copy.read_bytes()).decode("ascii")
            html = page(Path(name).stem, {"file": None}, f"<style>\n{(WEB / 'p4d.css').read_text()}</style>",
                        f'<script type="module">\n{bundle()}\n</script>',
                        f'<script type="application/octet-stream" id="p4d-data">{data}</script>')
            with atomic_path(cfg.output) as tmp_out:
                tmp_out.write_text(html, encoding="utf-8")
            return cfg.output, recoded
        target = cfg.output
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise UsageError(f"{target}: exists and is not an empty folder; give a new or empty folder")
        with atomic_dir(target) as stage:
            (stage / "p4d").mkdir()
            for p in modules():
                shutil.copyfile(p, stage / "p4d" / p.name)
            shutil.copyfile(WEB / "p4d.css", stage / "p4d" / "p4d.css")
            recoded = write_portrait(reader, stage / name)
            html = page(Path(name).stem, {"file": name}, '<link rel="stylesheet" href="p4d/p4d.css">',
                        '<script type="module" src="p4d/main.js"></script>')
            (stage / "index.html").write_text(html, encoding="utf-8")
        return target, recoded


def main(argv) -> int:
    args = parser().parse_args(argv)
    cfg = SiteConfig(Path(args.file), Path(args.output), args.single_file, args.quiet)
    out, recoded = build(cfg)
    if not args.quiet:
        note = " (raw+zstd tiles re-coded as png for browsers)" if recoded else ""
        how = "open it in a browser" if cfg.single_file else \
            f"serve the folder with any static web server, e.g. `python3 -m http.server -d {out}`"
        print(f"player: wrote {out}{note}; {how}")
    return EXIT_OK
