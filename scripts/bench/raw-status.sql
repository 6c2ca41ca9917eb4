-- What `pilotwatch status --as-of 2026-11-29T00:00:00Z` computes, straight from the raw rows
-- (observation and event), for the dashboard benchmark: per pilot, subjects enrolled and
-- withdrawn, subjects active in the last 7 days, subject-days with data in the 28-day adherence
-- window, and the last observation.
-- Memory-mapped reads, as pilotwatch's own read-only connections use them.
PRAGMA mmap_size = 2147418112;
WITH t(now) AS (SELECT 1795910400000),
s AS (
  SELECT id, pilot_id,
         (SELECT min(at) FROM event WHERE subject_id = subject.id AND indicator_id = 1) AS e,
         (SELECT min(at) FROM event WHERE subject_id = subject.id AND indicator_id = 2) AS w
  FROM subject),
d AS (
  SELECT o.subject_id AS id, o.at / 86400000 AS day, max(o.at) AS last
  FROM observation o, t WHERE o.at > t.now - 28 * 86400000 AND o.at <= t.now
  GROUP BY 1, 2)
SELECT s.pilot_id,
       count(DISTINCT CASE WHEN s.e <= t.now THEN s.id END),
       count(DISTINCT CASE WHEN s.w <= t.now THEN s.id END),
       count(DISTINCT CASE WHEN d.day >= t.now / 86400000 - 6 THEN d.id END),
       count(d.day), max(d.last)
FROM t, s LEFT JOIN d ON d.id = s.id
GROUP BY s.pilot_id;
