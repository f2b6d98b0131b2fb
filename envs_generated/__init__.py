"""The shipped datasets: each scenario's test split and the manifest, installed as package data."""
