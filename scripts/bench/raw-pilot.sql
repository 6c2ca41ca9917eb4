-- What `pilotwatch pilot bench-01 --as-of 2026-11-29T00:00:00Z` computes, straight from the raw
-- rows, for the dashboard benchmark: enrolled and withdrawn, active in the last 7 days,
-- subject-days with data over the 12 weeks of sparklines (105 days), the SpO2 outcome (earliest
-- value in [enrolment - 30d, enrolment + 14d] and latest value, by primary-key seeks) and the
-- exacerbation events.
-- Memory-mapped reads, as pilotwatch's own read-only connections use them.
PRAGMA mmap_size = 2147418112;
WITH t(now) AS (SELECT 1795910400000),
s AS (
  SELECT id,
         (SELECT min(at) FROM event WHERE subject_id = subject.id AND indicator_id = 1) AS e,
         (SELECT min(at) FROM event WHERE subject_id = subject.id AND indicator_id = 2) AS w
  FROM subject WHERE pilot_id = 1),
d AS (
  SELECT o.subject_id AS id, o.at / 86400000 AS day
  FROM observation o JOIN s ON s.id = o.subject_id, t
  WHERE o.at > t.now - 105 * 86400000 AND o.at <= t.now
  GROUP BY 1, 2),
oc AS (
  SELECT (SELECT value FROM observation o WHERE o.subject_id = s.id AND o.indicator_id = 10
            AND o.at BETWEEN s.e - 30 * 86400000 AND s.e + 14 * 86400000 ORDER BY o.at LIMIT 1) AS b,
         (SELECT value FROM observation o, t WHERE o.subject_id = s.id AND o.indicator_id = 10
            AND o.at <= t.now ORDER BY o.at DESC LIMIT 1) AS l
  FROM s, t WHERE s.e <= t.now)
SELECT (SELECT count(*) FROM s, t WHERE e <= t.now),
       (SELECT count(*) FROM s, t WHERE w <= t.now),
       (SELECT count(DISTINCT id) FROM d, t WHERE day >= t.now / 86400000 - 6),
       (SELECT count(*) FROM d),
       (SELECT avg(l - b) FROM oc WHERE b IS NOT NULL AND l IS NOT NULL),
       (SELECT count(*) FROM event ev JOIN s ON s.id = ev.subject_id, t WHERE ev.indicator_id = 3 AND ev.at <= t.now);
