/*
 * A consumer-group member for tests: librdkafka's high-level consumer.
 *
 *   consumer BOOTSTRAP GROUP IDLE_MS MAX_MS TOPIC...
 *
 * Joins GROUP (auto.offset.reset=earliest, no auto commit), subscribes to the
 * topics and prints one line per record it is given:
 *
 *   TOPIC PARTITION OFFSET ID KEY
 *
 * (ID the record's "id" header, "-" when it has none or no key), committing
 * each record's offset (synchronously, after its line is printed and
 * flushed: a member killed between the two gives that record again to the
 * next member, at-least-once as a real consumer; a commit refused in a
 * rebalance likewise). Stops when no record came for IDLE_MS after it had an
 * assignment, or after MAX_MS in all; then commits the positions it has,
 * leaves the group (consumer_close) and prints "# done N" to stderr.
 *
 * Build: cc -o consumer consumer.c $(pkg-config --cflags --libs rdkafka)
 */
#include <librdkafka/rdkafka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long long
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
    char errstr[512];
    if (rd_kafka_conf_set(conf, k, v, errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "consumer: %s: %s\n", k, errstr);
        exit(2);
    }
}

int
main(int argc, char **argv)
{
    char errstr[512];
    rd_kafka_conf_t *conf;
    rd_kafka_t *rk;
    rd_kafka_topic_partition_list_t *topics;
    long long idle_ms, max_ms, start, last;
    long n = 0;
    int i, assigned = 0, uncommitted = 0;

    if (argc < 6) {
        fprintf(stderr, "usage: consumer BOOTSTRAP GROUP IDLE_MS MAX_MS TOPIC...\n");
        return 2;
    }
    idle_ms = atoll(argv[3]);
    max_ms = atoll(argv[4]);
    conf = rd_kafka_conf_new();
    set(conf, "bootstrap.servers", argv[1]);
    set(conf, "group.id", argv[2]);
    set(conf, "auto.offset.reset", "earliest");
    set(conf, "enable.auto.commit", "false");
    set(conf, "session.timeout.ms", "6000");
    set(conf, "log_level", "3");
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!rk) {
        fprintf(stderr, "consumer: rd_kafka_new: %s\n", errstr);
        return 1;
    }
    rd_kafka_poll_set_consumer(rk);
    topics = rd_kafka_topic_partition_list_new(argc - 5);
    for (i = 5; i < argc; i++)
        rd_kafka_topic_partition_list_add(topics, argv[i], RD_KAFKA_PARTITION_UA);
    if (rd_kafka_subscribe(rk, topics)) {
        fprintf(stderr, "consumer: subscribe failed\n");
        return 1;
    }
    rd_kafka_topic_partition_list_destroy(topics);

    start = last = now_ms();
    while (now_ms() - start < max_ms) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!assigned) {
            rd_kafka_topic_partition_list_t *a = NULL;
            if (rd_kafka_assignment(rk, &a) == 0 && a) {
                if (a->cnt > 0) {
                    assigned = 1;
                    last = now_ms();
                }
                rd_kafka_topic_partition_list_destroy(a);
            }
        }
        if (!m) {
            if (assigned && now_ms() - last >= idle_ms)
                break;
            continue;
        }
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                fprintf(stderr, "# consumer error: %s\n", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        {
            rd_kafka_headers_t *hdrs = NULL;
            const void *val = NULL;
            size_t len = 0;
            char id[128] = "-";
            if (rd_kafka_message_headers(m, &hdrs) == 0 &&
                rd_kafka_header_get_last(hdrs, "id", &val, &len) == 0 && val && len < sizeof id) {
                memcpy(id, val, len);
                id[len] = '\0';
            }
            printf("%s %d %lld %s %.*s\n", rd_kafka_topic_name(m->rkt), (int) m->partition,
                   (long long) m->offset, id, m->key ? (int) m->key_len : 1, m->key ? (const char *) m->key : "-");
            fflush(stdout);
            /* Fails during a rebalance (the partition may be another
             * member's by now): the next owner reads the record again. */
            if (rd_kafka_commit_message(rk, m, 0) != RD_KAFKA_RESP_ERR_NO_ERROR)
                uncommitted = 1;
        }
        n++;
        last = now_ms();
        rd_kafka_message_destroy(m);
    }
    /* What this member still has assigned: its positions, committed
     * (covers records whose own commit failed in a rebalance). */
    if (uncommitted || assigned)
        rd_kafka_commit(rk, NULL, 0);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    fprintf(stderr, "# done %ld\n", n);
    return 0;
}
