"""Tests of clinsight.security."""
