/*
 * fuzz_ctl.c - libFuzzer target for the control protocol (src/ctl_proto.c):
 * the bytes a client may send, split into lines and parsed, and the same
 * bytes read back as a reply. `make fuzz` runs it under ASan and UBSan
 * for a bounded time, starting from test/fuzz/corpus/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void requests(const char *buf, size_t len)
{
    while (len) {
        size_t n = coty_ctl_line(buf, len);
        struct coty_ctl_req req;
        if (!n)
            n = len; /* the last line, as a half-closed client leaves it */
        if (n > COTY_CTL_LINE_MAX)
            n = COTY_CTL_LINE_MAX; /* the server refuses past its buffer */
        if (coty_ctl_parse(buf, n, &req) == 0 && (req.verb == CTL_SCALE || req.verb == CTL_RESTART))
            if (strlen(req.name) > COTY_CTL_NAME_MAX || (req.verb == CTL_SCALE && req.n < 1))
                abort();
        buf += n;
        len -= n;
    }
}

/* The bytes as a reply (NUL-terminated); then as a string written into
 * a reply and read back, which must give it whole. */
static void replies(const char *buf, size_t len)
{
    char *s = malloc(len + 1), *back = malloc(len + 1), out[64];
    struct coty_buf b;

    if (!s || !back)
        abort();
    memcpy(s, buf, len);
    s[len] = '\0';
    coty_json_string(s, "text", out, sizeof out);
    coty_json_string(s, "error", out, 1);
    coty_buf_init(&b, 8 * len + 64);
    coty_buf_add(&b, "{\"ok\":true,\"text\":", 18);
    coty_buf_json(&b, s);
    coty_buf_add(&b, "}", 1);
    if (b.failed || coty_json_string(b.p, "text", back, len + 1) < 0 || strcmp(back, s))
        abort();
    coty_buf_consume(&b, len / 2);
    coty_buf_free(&b);
    free(back);
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    requests((const char *)data, size);
    replies((const char *)data, size);
    return 0;
}
