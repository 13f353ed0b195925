"""Figures and tables for the book."""
