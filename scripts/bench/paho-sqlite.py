#!/usr/bin/python3
"""The user's naive alternative, for `make bench`: a paho-mqtt subscriber that stores every
observation in SQLite, committing every --batch messages (and when the last expected one arrives).

No validation, no roll-ups, no quarantine: JSON in, rows out. WAL with synchronous=FULL (as
pilotwatch's store), a primary key per table so that a redelivered message is ignored. The
acknowledgement leaves when the callback returns (paho 1.x), not after the commit.

    paho-sqlite.py --port P --topic 'pilots/+/+/obs' --count N --db FILE --client-id ID [--register]

--register connects with a persistent session, subscribes and leaves (so the broker queues what
is published next, for the draining run). Prints "subscribed" on stderr once the subscription is
acknowledged; exits once N messages are committed.
"""
import argparse
import json
import sqlite3
import sys

import paho.mqtt.client as mqtt

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--topic", required=True)
parser.add_argument("--count", type=int, default=0)
parser.add_argument("--db")
parser.add_argument("--client-id", required=True)
parser.add_argument("--batch", type=int, default=1000)
parser.add_argument("--register", action="store_true")
args = parser.parse_args()

db = None
if not args.register:
    db = sqlite3.connect(args.db, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    db.execute("""CREATE TABLE IF NOT EXISTS message (
        device TEXT NOT NULL, msg_id TEXT NOT NULL, received_at REAL NOT NULL,
        PRIMARY KEY (device, msg_id)) WITHOUT ROWID""")
    db.execute("""CREATE TABLE IF NOT EXISTS observation (
        subject TEXT NOT NULL, indicator TEXT NOT NULL, at TEXT NOT NULL, value REAL NOT NULL, device TEXT NOT NULL,
        PRIMARY KEY (subject, indicator, at)) WITHOUT ROWID""")
    db.execute("BEGIN")

received = 0


def on_connect(client, userdata, flags, rc):
    client.subscribe(args.topic, qos=1)


def on_subscribe(client, userdata, mid, granted_qos):
    print("subscribed", file=sys.stderr, flush=True)
    if args.register:
        client.disconnect()


def on_message(client, userdata, msg):
    global received
    device = msg.topic.split("/")[2]
    try:
        body = json.loads(msg.payload)
        db.execute("INSERT OR IGNORE INTO message VALUES (?, ?, julianday('now'))", (device, body["msg_id"]))
        db.executemany("INSERT OR IGNORE INTO observation VALUES (?, ?, ?, ?, ?)",
                       [(o["subject"], o["indicator"], o["at"], o["value"], device) for o in body["observations"]])
    except (ValueError, KeyError, TypeError):
        pass  # not for this naive subscriber
    received += 1
    if received % args.batch == 0 or received >= args.count:
        db.execute("COMMIT")
        db.execute("BEGIN")
    if received >= args.count:
        client.disconnect()


client = mqtt.Client(client_id=args.client_id, clean_session=False, protocol=mqtt.MQTTv311)
client.on_connect = on_connect
client.on_subscribe = on_subscribe
client.on_message = on_message
client.max_queued_messages_set(0)
client.connect("127.0.0.1", args.port, keepalive=60)
client.loop_forever()
if db is not None:
    db.execute("COMMIT")
    db.close()
