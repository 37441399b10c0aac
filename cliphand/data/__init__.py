"""Data: raw inputs (download), synthetic rendering, preprocessing, loading and augmentation."""
