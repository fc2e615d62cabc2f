"""Converters from publishers' raw downloads to the layouts the data configs read.

One module per dataset family, each with ``convert_<name>(src, dst, *, workers=2, **options)``
returning a :class:`ConversionReport`. The outputs (folders, file names, label values, tiles, split
lists) are MMSegmentation 1.x's, so data converted by either tool serves both. Importing this
package loads no converter; each module imports its heavy dependencies when it runs.

=================  ==========================================================
module             functions
=================  ==========================================================
cityscapes         convert_cityscapes
voc_aug            convert_voc_aug
pascal_context     convert_pascal_context
coco_stuff         convert_coco_stuff10k, convert_coco_stuff164k
isprs              convert_potsdam, convert_vaihingen
isaid              convert_isaid
loveda             convert_loveda
retinal            convert_drive, convert_stare, convert_chase_db1, convert_hrf
synapse            convert_synapse
refuge             convert_refuge
nyu                convert_nyu
ade20k_full        convert_ade20k_full
pascal_context_459 convert_pascal_context_459
=================  ==========================================================

See docs/converters.md for the layouts and commands.
"""

from segkit.data.convert.parallel import ConversionReport

__all__ = ["ConversionReport"]
