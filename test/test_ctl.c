/*
 * test_ctl.c - the control protocol's pure parts (src/ctl_proto.c):
 * request lines, the parser, the bounded output buffer, JSON strings.
 */
#include <string.h>

#include "ctl_proto.h"
#include "unit.h"

static int parse(const char *line, struct coty_ctl_req *r)
{
    return coty_ctl_parse(line, strlen(line), r);
}

static void test_verbs(void)
{
    struct coty_ctl_req r;

    CHECK(parse("status\n", &r) == 0 && r.verb == CTL_STATUS);
    CHECK(parse("status json\r\n", &r) == 0 && r.verb == CTL_STATUS_JSON);
    CHECK(parse("check", &r) == 0 && r.verb == CTL_CHECK);
    CHECK(parse("scale my web 12\n", &r) == 0 && r.verb == CTL_SCALE && r.n == 12 &&
          !strcmp(r.name, "my web"));
    CHECK(parse("restart web\n", &r) == 0 && r.verb == CTL_RESTART && !strcmp(r.name, "web"));
    CHECK(parse("scale web 1000000", &r) == 0 && r.n == 1000000);
}

static void test_refused(void)
{
    struct coty_ctl_req r;
    char long_name[400] = "restart ";

    CHECK(parse("\n", &r) < 0 && !strcmp(r.error, "empty request"));
    CHECK(parse("statu\n", &r) < 0 && strstr(r.error, "unknown request"));
    CHECK(parse("status xml\n", &r) < 0);
    CHECK(parse("stop now\n", &r) < 0);
    CHECK(parse("scale web\n", &r) < 0);
    CHECK(parse("scale web 0\n", &r) < 0 && strstr(r.error, "from 1 to 1000000"));
    CHECK(parse("scale web 1000001\n", &r) < 0);
    CHECK(parse("scale web -1\n", &r) < 0);
    CHECK(parse("scale  3\n", &r) < 0 && strstr(r.error, "missing"));
    CHECK(parse("restart\n", &r) < 0);
    CHECK(coty_ctl_parse("st\0atus\n", 8, &r) < 0 && strstr(r.error, "printable"));
    CHECK(parse("status\t\n", &r) < 0);
    memset(long_name + 8, 'x', 300);
    long_name[308] = '\0';
    CHECK(parse(long_name, &r) < 0 && strstr(r.error, "too long"));
}

static void test_lines(void)
{
    CHECK(coty_ctl_line("status\ncheck\n", 13) == 7);
    CHECK(coty_ctl_line("stat", 4) == 0);
    CHECK(coty_ctl_line("\n", 1) == 1);
}

static void test_buf(void)
{
    struct coty_buf b;
    char out[32];

    coty_buf_init(&b, 16);
    coty_buf_printf(&b, "%s", "0123456789");
    CHECK(!b.failed && b.len == 10);
    coty_buf_add(&b, "0123456789", 10);
    CHECK(b.failed && b.len == 10);
    coty_buf_consume(&b, 4);
    CHECK(b.len == 6 && !strcmp(b.p, "456789"));
    coty_buf_free(&b);
    coty_buf_init(&b, 1024);
    coty_buf_add(&b, "{\"ok\":true,\"text\":", 18);
    coty_buf_json(&b, "a\"b\\c\nd\x01");
    coty_buf_add(&b, "}", 1);
    CHECK(!strcmp(b.p, "{\"ok\":true,\"text\":\"a\\\"b\\\\c\\nd\\u0001\"}"));
    CHECK(coty_json_string(b.p, "text", out, sizeof out) == 0 && !strcmp(out, "a\"b\\c\nd\x01"));
    CHECK(coty_json_string(b.p, "error", out, sizeof out) < 0);
    CHECK(coty_json_string(b.p, "text", out, 3) == 0 && !strcmp(out, "a\""));
    CHECK(coty_json_string("{\"text\":\"cut", "text", out, sizeof out) < 0);
    CHECK(coty_json_string("{\"text\":\"\\u00", "text", out, sizeof out) < 0);
    coty_buf_free(&b);
}

int main(void)
{
    test_verbs();
    test_refused();
    test_lines();
    test_buf();
    return unit_done("test_ctl");
}
