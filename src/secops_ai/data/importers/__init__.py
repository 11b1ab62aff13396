"""Importers: turn scanner output, security catalogs and logs into normalised, versioned datasets."""
