#!/usr/bin/env python3
"""Validates a `pilotwatch export --format fhir` file against FHIR R4 (4.0.1).

Run it with the virtual environment that scripts/fhir-venv.sh creates:

    scripts/fhir-venv.sh
    .venv-fhir/bin/python scripts/fhir-validate.py export.json

Two checks:
1. Structure and datatypes: the Bundle is parsed with the R4 models of fhir.resources 6.4.0
   (pydantic 1): required elements, cardinalities, primitive formats (dateTime, instant, uri,
   code, decimal...), choice types and unknown elements.
2. Code bindings that fhir.resources does not enforce: the required value sets of
   Bundle.type, MeasureReport.status, MeasureReport.type, the measure-population codes of
   group.population.code, MeasureReport.improvementNotation, and data-absent-reason codes;
   plus the pilotwatch profile: a Bundle of type `collection` holding only MeasureReports of
   type `summary`, status `complete`, each with period, reporter, measure, and groups whose
   populations carry either a count or a data-absent-reason.

Prints one line per problem and `OK: ...` on success; exits 0 when valid, 1 otherwise, 2 when
the file cannot be read or the FHIR models are missing.
"""
import json
import sys

BUNDLE_TYPES = {"document", "message", "transaction", "transaction-response", "batch", "batch-response",
                "history", "searchset", "collection"}
REPORT_STATUS = {"complete", "pending", "error"}
REPORT_TYPES = {"individual", "subject-list", "summary", "data-collection"}
POPULATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/measure-population"
POPULATION_CODES = {"initial-population", "numerator", "numerator-exclusion", "denominator", "denominator-exclusion",
                    "denominator-exception", "measure-population", "measure-population-exclusion",
                    "measure-observation"}
IMPROVEMENT_SYSTEM = "http://terminology.hl7.org/CodeSystem/measure-improvement-notation"
IMPROVEMENT_CODES = {"increase", "decrease"}
DAR_URL = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
DAR_CODES = {"unknown", "asked-unknown", "temp-unknown", "not-asked", "asked-declined", "masked", "not-applicable",
             "unsupported", "as-text", "error", "not-a-number", "negative-infinity", "positive-infinity",
             "not-performed", "not-permitted"}


def codings(concept):
    return (concept or {}).get("coding") or []


def dar_codes(element):
    return [e.get("valueCode") for e in (element or {}).get("extension") or [] if e.get("url") == DAR_URL]


def check_bindings(bundle):
    problems = []
    if bundle.get("resourceType") != "Bundle":
        return ["resourceType is %r, not Bundle" % bundle.get("resourceType")]
    if bundle.get("type") not in BUNDLE_TYPES:
        problems.append("Bundle.type %r is not in the bundle-type value set" % bundle.get("type"))
    if bundle.get("type") != "collection":
        problems.append("Bundle.type is %r; pilotwatch exports a collection" % bundle.get("type"))
    entries = bundle.get("entry") or []
    full_urls = set()
    for n, entry in enumerate(entries):
        where = "entry[%d]" % n
        url = entry.get("fullUrl")
        if not url:
            problems.append("%s has no fullUrl" % where)
        elif url in full_urls:
            problems.append("%s.fullUrl %s is not unique" % (where, url))
        full_urls.add(url)
        r = entry.get("resource") or {}
        if r.get("resourceType") != "MeasureReport":
            problems.append("%s.resource is a %r, not a MeasureReport" % (where, r.get("resourceType")))
            continue
        where += " (MeasureReport %s)" % r.get("id")
        if r.get("status") not in REPORT_STATUS:
            problems.append("%s.status %r is not in measure-report-status" % (where, r.get("status")))
        if r.get("status") != "complete":
            problems.append("%s.status is %r, not complete" % (where, r.get("status")))
        if r.get("type") not in REPORT_TYPES:
            problems.append("%s.type %r is not in measure-report-type" % (where, r.get("type")))
        if r.get("type") != "summary":
            problems.append("%s.type is %r, not summary" % (where, r.get("type")))
        for field in ("measure", "period", "reporter"):
            if not r.get(field):
                problems.append("%s has no %s" % (where, field))
        if "improvementNotation" in r:
            cs = codings(r["improvementNotation"])
            if not cs or any(c.get("system") != IMPROVEMENT_SYSTEM or c.get("code") not in IMPROVEMENT_CODES for c in cs):
                problems.append("%s.improvementNotation %r is not in measure-improvement-notation" % (where, cs))
        groups = r.get("group") or []
        if not groups:
            problems.append("%s has no group" % where)
        for g, group in enumerate(groups):
            gw = "%s.group[%d]" % (where, g)
            seen = set()
            for p, pop in enumerate(group.get("population") or []):
                pw = "%s.population[%d]" % (gw, p)
                cs = codings(pop.get("code"))
                if len(cs) != 1 or cs[0].get("system") != POPULATION_SYSTEM or cs[0].get("code") not in POPULATION_CODES:
                    problems.append("%s.code %r is not a measure-population code" % (pw, cs))
                else:
                    seen.add(cs[0]["code"])
                absent = dar_codes(pop.get("_count"))
                if "count" in pop:
                    if not isinstance(pop["count"], int) or pop["count"] < 0:
                        problems.append("%s.count %r is not a count" % (pw, pop["count"]))
                    if absent:
                        problems.append("%s has both a count and a data-absent-reason" % pw)
                elif not absent:
                    problems.append("%s has neither a count nor a data-absent-reason" % pw)
                for code in absent:
                    if code not in DAR_CODES:
                        problems.append("%s data-absent-reason %r is not in the value set" % (pw, code))
            score = group.get("measureScore")
            if score is None:
                problems.append("%s has no measureScore (a value or a data-absent-reason)" % gw)
            else:
                absent = dar_codes(score)
                if ("value" in score) == bool(absent):
                    problems.append("%s.measureScore needs exactly one of a value and a data-absent-reason" % gw)
                for code in absent:
                    if code not in DAR_CODES:
                        problems.append("%s.measureScore data-absent-reason %r is not in the value set" % (gw, code))
    return problems, len(entries)


def main(argv):
    if len(argv) != 2:
        print("usage: fhir-validate.py FILE.json", file=sys.stderr)
        return 2
    try:
        with open(argv[1], encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        print("cannot read %s: %s" % (argv[1], e), file=sys.stderr)
        return 2
    try:
        import fhir.resources
        from fhir.resources.bundle import Bundle
    except ImportError as e:
        print("fhir.resources is not installed (%s); run scripts/fhir-venv.sh and use .venv-fhir/bin/python" % e,
              file=sys.stderr)
        return 2
    if fhir.resources.__version__ != "6.4.0":
        print("fhir.resources %s is not 6.4.0 (the FHIR R4 4.0.1 models); run scripts/fhir-venv.sh"
              % fhir.resources.__version__, file=sys.stderr)
        return 2
    problems = []
    try:
        Bundle.parse_obj(data)
    except Exception as e:  # pydantic.ValidationError lists every problem
        problems += ["R4 model: " + line for line in str(e).splitlines()]
    result = check_bindings(data)
    if isinstance(result, list):
        problems += result
        count = 0
    else:
        more, count = result
        problems += more
    for p in problems:
        print(p)
    if problems:
        print("INVALID: %d problem(s)" % len(problems))
        return 1
    print("OK: Bundle of %d MeasureReport(s) is valid FHIR R4 (fhir.resources %s)" % (count, fhir.resources.__version__))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
