-- Grows a pilotwatch store (schema v2, already migrated) to ~10M observations, 50,000 subjects
-- and 15 pilots directly in SQL, roll-ups included, for the dashboard benchmark (make bench).
-- "Now" is 2026-11-29T00:00:00Z; the views are timed --as-of that instant.
PRAGMA journal_mode=WAL;
PRAGMA synchronous=OFF;
PRAGMA cache_size=-1000000;
PRAGMA temp_store=MEMORY;
BEGIN;
-- NOW = 2026-11-29T00:00:00Z
CREATE TEMP TABLE c(now INTEGER);
INSERT INTO c VALUES (1795910400000);
INSERT INTO pilot (id, code, first_seen, last_observation_at)
  WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 15)
  SELECT i, printf('bench-%02d', i), 1764547200000, NULL FROM n;
INSERT INTO indicator (id, code, kind) VALUES
 (1,'enrolled','event'),(2,'withdrawn','event'),(3,'exacerbation','event'),(4,'hypoglycaemia','event'),(5,'hospitalisation','event'),
 (10,'spo2','measurement'),(11,'resp_rate','measurement'),(12,'cgm_tir','measurement'),(13,'glucose','measurement'),
 (14,'weight','measurement'),(15,'heart_rate','measurement'),(16,'cat_score','score'),(17,'hba1c','measurement'),(18,'nt_probnp','measurement');
-- programme of pilot p: (p-1)%3 -> 0 resp, 1 diab, 2 card; indicators A (daily 80%), B (every 2nd day)
CREATE TEMP TABLE plan AS
  WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 50000)
  SELECT i AS sid, ((i-1) % 15) + 1 AS pid,
         (SELECT now FROM c) - ((i*7919) % 330) * 86400000 - ((i*104729) % 86400) * 1000 AS e
  FROM n;
CREATE TEMP TABLE k AS WITH RECURSIVE k(n) AS (SELECT 0 UNION ALL SELECT n+1 FROM k WHERE n < 330) SELECT n FROM k;
INSERT INTO device (id, pilot_id, code, first_seen, last_seen, messages, observations)
  SELECT sid, pid, printf('dev-%05d', sid), e, max(e, (SELECT now FROM c) - (sid % 4) * 86400000), 100, 200 FROM plan;
INSERT INTO observation (subject_id, indicator_id, at, value, device_id)
  SELECT sid, ind, at, val, sid FROM (
    SELECT p.sid, 10 + 2*((p.pid-1) % 3) AS ind, p.e + k.n*86400000 + 3600000 AS at, 85 + (p.sid + k.n) % 15 AS val
      FROM plan p, k WHERE (p.sid*31 + k.n*17) % 5 != 0
    UNION ALL
    SELECT p.sid, 11 + 2*((p.pid-1) % 3), p.e + k.n*86400000 + 7200000, 60 + (p.sid*3 + k.n) % 30
      FROM plan p, k WHERE k.n % 2 = 0
  ) WHERE at <= (SELECT now FROM c)
  ORDER BY 1, 2, 3;
INSERT INTO subject (id, pilot_id, code, first_at, first_measure_at, enrolled_at, withdrawn_at)
  SELECT sid, pid, printf('s%06d', sid), e, e + 3600000, e,
         CASE WHEN sid % 7 = 0 AND e + 60*86400000 <= (SELECT now FROM c) THEN e + 60*86400000 END FROM plan;
INSERT INTO event (subject_id, indicator_id, at, value, device_id)
  SELECT sid, 1, e, 1, sid FROM plan
  UNION ALL SELECT id, 2, withdrawn_at, 1, id FROM subject WHERE withdrawn_at IS NOT NULL
  UNION ALL SELECT sid, 3 + ((pid-1) % 3), e + 30*86400000 + 5000, 1, sid FROM plan WHERE sid % 4 = 0 AND e + 30*86400000 + 5000 <= (SELECT now FROM c)
  ORDER BY 1, 2, 3;
INSERT INTO subject_day (subject_id, day, first_at, last_at, n)
  SELECT subject_id, at / 86400000, min(at), max(at), count(*) FROM observation GROUP BY subject_id, at / 86400000;
-- The subjects' activity roll-up, as the v2 migration fills it (Schema.swift).
UPDATE subject SET last_measure_at = (SELECT max(last_at) FROM subject_day WHERE subject_id = subject.id);
UPDATE subject SET
  activity_lo = (SELECT coalesce(sum(1 << (subject.last_measure_at / 86400000 - day)), 0) FROM subject_day
                 WHERE subject_id = subject.id AND day BETWEEN subject.last_measure_at / 86400000 - 63 AND subject.last_measure_at / 86400000),
  activity_hi = (SELECT coalesce(sum(1 << (subject.last_measure_at / 86400000 - day - 64)), 0) FROM subject_day
                 WHERE subject_id = subject.id AND day BETWEEN subject.last_measure_at / 86400000 - 127 AND subject.last_measure_at / 86400000 - 64)
WHERE last_measure_at IS NOT NULL;
INSERT INTO subject_indicator (subject_id, indicator_id, n, first_at, first_value, last_at, last_value)
  SELECT subject_id, indicator_id, count(*), min(at), 0, max(at), 0 FROM observation GROUP BY subject_id, indicator_id;
UPDATE subject_indicator SET
  first_value = (SELECT value FROM observation o WHERE o.subject_id = subject_indicator.subject_id AND o.indicator_id = subject_indicator.indicator_id AND o.at = subject_indicator.first_at),
  last_value = (SELECT value FROM observation o WHERE o.subject_id = subject_indicator.subject_id AND o.indicator_id = subject_indicator.indicator_id AND o.at = subject_indicator.last_at);
INSERT INTO pilot_day (pilot_id, day, accepted, duplicate, refused, statuses, observations, duplicate_observations)
  SELECT p.id, (SELECT now FROM c)/86400000 - k.n, 3000, 10, 20 + (p.id % 3) * 100, 0, 30000, 5 FROM pilot p, k;
INSERT INTO refusal_day (pilot_id, day, reason, n)
  SELECT p.id, (SELECT now FROM c)/86400000 - k.n, 'out_of_range', 20 + (p.id % 3) * 100 FROM pilot p, k;
UPDATE pilot SET last_observation_at = (SELECT now FROM c);
COMMIT;
SELECT count(*) FROM observation;
SELECT count(*) FROM subject_day;
PRAGMA wal_checkpoint(TRUNCATE);
