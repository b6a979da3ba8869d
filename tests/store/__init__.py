"""Tests of clinsight.store."""
