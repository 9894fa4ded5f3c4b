"""librdkafka (confluent-kafka) over SASL_SSL for compat/test_sasl_ssl.sh.

    sasl_client.py roundtrip TOPIC N   produce N records as bob (SCRAM-SHA-256),
                                       read them back as alice (SCRAM-SHA-512)
    sasl_client.py login USER PASSWORD MECHANISM
                                       exit 0 if metadata comes back, else 1
                                       (librdkafka logs why on stderr)
    sasl_client.py produce USER TOPIC  one record as USER (SCRAM-SHA-512):
                                       exit 0 when acknowledged, else 4 with
                                       the error's name (TOPIC_AUTHORIZATION_FAILED)
    sasl_client.py consume USER TOPIC GROUP
                                       reads one record in GROUP: exit 0, or 4
                                       with the error's name
    sasl_client.py topics USER         the topics USER's metadata lists
    sasl_client.py init-txn USER ID    InitProducerId for transactional id ID
                                       as USER (the id then exists, Empty)

Needs KAFKA_BOOTSTRAP and KAFKA_CA_FILE. The bundled librdkafka is new
enough (2.6.1 or later) to send the SCRAM nonce as RFC 5802 says; Debian's
kcat links an older one, which Kafka 4 and Rill both refuse for SCRAM.
"""
import os
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient


def password_of(user):
    return f"{user}-secret"


def config(user, password, mechanism):
    return {
        "bootstrap.servers": os.environ["KAFKA_BOOTSTRAP"],
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": os.environ["KAFKA_CA_FILE"],
        "sasl.mechanisms": mechanism,
        "sasl.username": user,
        "sasl.password": password,
    }


def roundtrip(topic, n):
    errors = []
    producer = Producer({**config("bob", "bob-secret", "SCRAM-SHA-256"), "enable.idempotence": True})
    for i in range(n):
        producer.produce(topic, key=f"k{i % 50}", value=f"scram record {i}",
                         on_delivery=lambda err, msg: err and errors.append(err))
        producer.poll(0)
    producer.flush(30)
    if errors:
        sys.exit(f"produce errors: {errors[:3]}")
    consumer = Consumer({**config("alice", "alice-secret", "SCRAM-SHA-512"),
                         "group.id": f"sasl-client-{topic}", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    seen = set()
    deadline = time.time() + 60
    while time.time() < deadline:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            sys.exit(f"consume error: {msg.error()}")
        if msg.value().startswith(b"scram record "):
            seen.add(msg.value())
        if len(seen) == n:
            break
    consumer.close()
    if len(seen) != n:
        sys.exit(f"read {len(seen)} of {n} records back")
    print(f"{n} records produced with SCRAM-SHA-256 (bob) read back with SCRAM-SHA-512 (alice)")


def login(user, password, mechanism):
    admin = AdminClient(config(user, password, mechanism))
    try:
        md = admin.list_topics(timeout=10)
    except KafkaException as e:
        sys.exit(f"no metadata: {e}")
    print(f"metadata: {len(md.brokers)} brokers")


def produce(user, topic):
    errors = []
    producer = Producer({**config(user, password_of(user), "SCRAM-SHA-512"),
                         "message.timeout.ms": 10000})
    producer.produce(topic, value=b"acl probe",
                     on_delivery=lambda err, msg: errors.append(err))
    producer.flush(15)
    if not errors:
        sys.exit("no delivery report within 15 s")
    if errors[0] is not None:
        print(errors[0].name())
        sys.exit(4)
    print("acknowledged")


def consume(user, topic, group):
    consumer = Consumer({**config(user, password_of(user), "SCRAM-SHA-512"),
                         "group.id": group, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    deadline = time.time() + 20
    try:
        while time.time() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                print(msg.error().name())
                sys.exit(4)
            print(f"read offset {msg.offset()}")
            return
        sys.exit("nothing read within 20 s")
    finally:
        consumer.close()


def topics(user):
    md = AdminClient(config(user, password_of(user), "SCRAM-SHA-512")).list_topics(timeout=10)
    for name in sorted(md.topics):
        print(name)


def init_txn(user, transactional_id):
    producer = Producer({**config(user, password_of(user), "SCRAM-SHA-512"),
                         "transactional.id": transactional_id})
    producer.init_transactions(30)
    print(f"{transactional_id} initialized")


if __name__ == "__main__":
    if sys.argv[1] == "produce":
        produce(*sys.argv[2:4])
    elif sys.argv[1] == "consume":
        consume(*sys.argv[2:5])
    elif sys.argv[1] == "topics":
        topics(sys.argv[2])
    elif sys.argv[1] == "roundtrip":
        roundtrip(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "init-txn":
        init_txn(*sys.argv[2:4])
    elif sys.argv[1] == "login":
        login(*sys.argv[2:5])
    else:
        sys.exit(__doc__)
