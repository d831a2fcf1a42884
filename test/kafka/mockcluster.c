/*
 * A Kafka cluster for tests: librdkafka's mock cluster (rdkafka_mock.h), a
 * real Kafka protocol server over TCP on 127.0.0.1, in a process of its own
 * (never inside PostgreSQL: the mock's thread does not block signals).
 *
 *   mockcluster [BROKERS] [TOPIC[:PARTITIONS]]...
 *
 * Starts BROKERS brokers (default 3; ids 1..BROKERS), creates the topics named
 * (default 3 partitions, replication factor 1), prints the bootstrap servers
 * as its first line, then reads commands on stdin, one a line, and answers
 * each with one line, "ok ..." or "error ...":
 *
 *   topic NAME [PARTITIONS]     create a topic
 *   down ID|all                 disconnect a broker and refuse connections
 *   up ID|all                   accept connections again
 *   rtt ID|all MS               delay every answer of a broker by MS ms
 *   err produce CODE...         the next Produce requests fail with these
 *                               error codes, one each, in order (numbers, e.g.
 *                               6 NOT_LEADER_FOR_PARTITION, 7 REQUEST_TIMED_OUT,
 *                               19 NOT_ENOUGH_REPLICAS, -195 _TRANSPORT)
 *   clear produce               forget the Produce errors not used yet
 *   quit                        stop (as does the end of stdin)
 *
 * Build: cc -o mockcluster mockcluster.c $(pkg-config --cflags --libs rdkafka)
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ERRS 64

static rd_kafka_mock_cluster_t *mc;

static int
create_topic(const char *spec, int default_partitions)
{
    char name[256];
    int partitions = default_partitions;
    const char *colon = strchr(spec, ':');
    size_t len = colon ? (size_t) (colon - spec) : strlen(spec);
    rd_kafka_resp_err_t err;

    if (len == 0 || len >= sizeof name)
        return -1;
    memcpy(name, spec, len);
    name[len] = '\0';
    if (colon)
        partitions = atoi(colon + 1);
    if (partitions <= 0)
        return -1;
    err = rd_kafka_mock_topic_create(mc, name, partitions, 1);
    if (err) {
        printf("error topic %s: %s\n", name, rd_kafka_err2str(err));
        return 1;
    }
    return 0;
}

static int
broker_id(const char *s)
{
    return strcmp(s, "all") == 0 ? -1 : atoi(s);
}

static void
command(char *line)
{
    char *argv[MAX_ERRS + 2];
    int argc = 0;
    char *tok;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;

    for (tok = strtok(line, " \t\r\n"); tok && argc < MAX_ERRS + 2; tok = strtok(NULL, " \t\r\n"))
        argv[argc++] = tok;
    if (argc == 0)
        return;

    if (strcmp(argv[0], "topic") == 0 && argc >= 2) {
        char spec[300];
        snprintf(spec, sizeof spec, "%s%s%s", argv[1], argc >= 3 ? ":" : "", argc >= 3 ? argv[2] : "");
        int rc = create_topic(spec, 3);
        if (rc < 0)
            printf("error bad topic\n");
        else if (rc == 0)
            printf("ok topic %s\n", argv[1]);
    } else if ((strcmp(argv[0], "down") == 0 || strcmp(argv[0], "up") == 0) && argc == 2) {
        err = argv[0][0] == 'd' ? rd_kafka_mock_broker_set_down(mc, broker_id(argv[1]))
                                : rd_kafka_mock_broker_set_up(mc, broker_id(argv[1]));
        if (err)
            printf("error %s: %s\n", argv[0], rd_kafka_err2str(err));
        else
            printf("ok %s %s\n", argv[0], argv[1]);
    } else if (strcmp(argv[0], "rtt") == 0 && argc == 3) {
        err = rd_kafka_mock_broker_set_rtt(mc, broker_id(argv[1]), atoi(argv[2]));
        if (err)
            printf("error rtt: %s\n", rd_kafka_err2str(err));
        else
            printf("ok rtt %s %s\n", argv[1], argv[2]);
    } else if (strcmp(argv[0], "err") == 0 && argc >= 3 && strcmp(argv[1], "produce") == 0) {
        rd_kafka_resp_err_t errs[MAX_ERRS];
        int i, n = argc - 2;
        for (i = 0; i < n; i++)
            errs[i] = (rd_kafka_resp_err_t) atoi(argv[i + 2]);
        rd_kafka_mock_push_request_errors_array(mc, 0 /* Produce */, (size_t) n, errs);
        printf("ok err produce %d\n", n);
    } else if (strcmp(argv[0], "clear") == 0 && argc == 2 && strcmp(argv[1], "produce") == 0) {
        rd_kafka_mock_clear_request_errors(mc, 0);
        printf("ok clear produce\n");
    } else {
        printf("error unknown command %s\n", argv[0]);
    }
    fflush(stdout);
}

int
main(int argc, char **argv)
{
    int brokers = argc > 1 ? atoi(argv[1]) : 3;
    char errstr[512];
    char line[4096];
    int i;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;

    /* The handle that owns the cluster produces nothing: quiet its warning. */
    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        fprintf(stderr, "mockcluster: rd_kafka_new: %s\n", errstr);
        return 1;
    }
    if (brokers <= 0 || !(mc = rd_kafka_mock_cluster_new(rk, brokers))) {
        fprintf(stderr, "mockcluster: cannot start %d brokers\n", brokers);
        return 1;
    }
    for (i = 2; i < argc; i++)
        if (create_topic(argv[i], 3) != 0) {
            fprintf(stderr, "mockcluster: cannot create topic %s\n", argv[i]);
            return 1;
        }
    printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);

    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "quit", 4) == 0)
            break;
        command(line);
    }
    printf("ok quit\n");
    fflush(stdout);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 0;
}
