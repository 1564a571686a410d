// The runtime of the cluster test's image function: a static program alone in an image built
// from scratch (no libc, no shell, no Node in it), speaking the Lambda Runtime API by itself.
// It answers {"runtime":"image","event":<event>}, and sleeps past any timeout when the event
// contains "sleep", so the test can see the shim kill and restart it.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static char reply[1 << 20];

// One request with `Connection: close`; the whole response ends up in `reply`.
static void exchange(const char *host, int port, const char *method, const char *path, const char *body) {
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0 || inet_pton(AF_INET, host, &addr.sin_addr) != 1 ||
      connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    perror("runtime api");
    exit(1);
  }
  dprintf(fd, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nContent-Length: %zu\r\n\r\n%s", method, path,
          host, body ? strlen(body) : 0, body ? body : "");
  size_t n = 0;
  ssize_t r;
  while (n < sizeof reply - 1 && (r = read(fd, reply + n, sizeof reply - 1 - n)) > 0) n += (size_t)r;
  reply[n] = 0;
  close(fd);
}

int main(void) {
  const char *api = getenv("AWS_LAMBDA_RUNTIME_API");
  char host[64];
  int port;
  if (!api || sscanf(api, "%63[^:]:%d", host, &port) != 2) {
    fprintf(stderr, "AWS_LAMBDA_RUNTIME_API is not host:port\n");
    return 1;
  }
  static char answer[(1 << 20) + 64];
  const char *id_header = "\nlambda-runtime-aws-request-id:";
  for (;;) {
    exchange(host, port, "GET", "/2018-06-01/runtime/invocation/next", NULL);
    char *id = strcasestr(reply, id_header), *event = strstr(reply, "\r\n\r\n");
    if (!id || !event) {
      fprintf(stderr, "unexpected answer to next: %.200s\n", reply);
      return 1;
    }
    char request_id[128], path[256];
    for (id += strlen(id_header); *id == ' '; id++) {
    }
    if (sscanf(id, "%127[^\r\n]", request_id) != 1) return 1;
    event += 4;
    printf("image runtime: event %s\n", event);
    fflush(stdout);
    if (strstr(event, "sleep")) sleep(600);
    snprintf(answer, sizeof answer, "{\"runtime\":\"image\",\"event\":%s}", event);
    snprintf(path, sizeof path, "/2018-06-01/runtime/invocation/%s/response", request_id);
    exchange(host, port, "POST", path, answer);
  }
}
