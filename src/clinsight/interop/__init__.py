"""Interoperability: results out as HL7 FHIR R4B resources and CDS Hooks."""
