"""Files -> samples: one module per landmark format, each registered with one loader signature and its own sniffing.

``core`` holds what every format shares (``Sample``, ``CleaningReport``,
cleaning, the image reader), ``registry`` the format table and
``load_dataset``. Importing this package registers every format.
"""

# Import order is sniffing order (a CSV is Kaggle's before it is a points CSV; COFW is named first in messages).
from facepoints.datasets import youtube, ibug, kaggle, cofw, aflw, wflw, custom  # noqa: F401, I001
from facepoints.datasets.aflw import load_aflw19_mat, load_aflw_sqlite
from facepoints.datasets.cofw import load_cofw_mat
from facepoints.datasets.core import (
    IMAGE_SUFFIXES,
    CleaningReport,
    DataError,
    Policy,
    Sample,
    clean_points,
    convert_sample,
    read_image,
    read_rgb,
    split_by_group,
)
from facepoints.datasets.custom import custom_scheme, load_points_csv, load_points_json
from facepoints.datasets.ibug import load_pts_folder, read_pts, write_pts
from facepoints.datasets.kaggle import load_kaggle_csv
from facepoints.datasets.matlab import mat_variables, read_mat
from facepoints.datasets.registry import (
    FORMATS,
    DatasetSpec,
    Format,
    LoadOptions,
    detect_format,
    load_dataset,
    register,
    split_dataset_path,
)
from facepoints.datasets.wflw import load_wflw_txt
from facepoints.datasets.youtube import load_youtube_csv

__all__ = [
    "FORMATS", "IMAGE_SUFFIXES", "CleaningReport", "DataError", "DatasetSpec", "Format", "LoadOptions", "Policy",
    "Sample", "clean_points", "convert_sample", "detect_format", "load_dataset", "read_image", "read_rgb",
    "register", "split_by_group", "split_dataset_path",
    "custom_scheme", "load_aflw19_mat", "load_aflw_sqlite", "load_cofw_mat", "load_kaggle_csv", "load_points_csv",
    "load_points_json", "load_pts_folder", "load_wflw_txt", "load_youtube_csv", "mat_variables", "read_mat",
    "read_pts", "write_pts",
]
