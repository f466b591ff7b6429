"""Records -> HTML pages, the stylesheet, ``.nojekyll``; no TensorFlow and nothing of analysis/.

One module per kind of site, each reading only records: ``report`` (a model's report), ``diff``
(two checkpoints compared), ``gallery`` (many models' reports under one index); ``common`` holds
what they share. The names callers use are re-exported here.
"""

from .common import CONTENT_SECURITY_POLICY, Page, build_date, make_environment, templates_dir
from .diff import write_diff_site
from .gallery import gallery_health, write_gallery_site
from .report import build_pages, write_site

__all__ = ["CONTENT_SECURITY_POLICY", "Page", "build_date", "build_pages", "gallery_health", "make_environment",
           "templates_dir", "write_diff_site", "write_gallery_site", "write_site"]
