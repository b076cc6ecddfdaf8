// netproxy/rtnl.cpp — one NETLINK_ROUTE request per call, acknowledged.
#include "netproxy/rtnl.hpp"

#include <arpa/inet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/fd.hpp"
#include "common/sys.hpp"

namespace bp::netproxy {

namespace {

struct NlRequest {
  alignas(NLMSG_ALIGNTO) char buf[512];
  nlmsghdr* hdr() { return reinterpret_cast<nlmsghdr*>(buf); }

  NlRequest(std::uint16_t type, std::uint16_t flags, std::size_t payload_len) {
    std::memset(buf, 0, sizeof buf);
    hdr()->nlmsg_len = static_cast<std::uint32_t>(NLMSG_LENGTH(payload_len));
    hdr()->nlmsg_type = type;
    hdr()->nlmsg_flags = static_cast<std::uint16_t>(NLM_F_REQUEST | NLM_F_ACK | flags);
    hdr()->nlmsg_seq = 1;
  }
  template <class T>
  T* payload() { return reinterpret_cast<T*>(NLMSG_DATA(hdr())); }

  void add_attr(std::uint16_t type, const void* data, std::size_t len) {
    auto* rta = reinterpret_cast<rtattr*>(buf + NLMSG_ALIGN(hdr()->nlmsg_len));
    rta->rta_type = type;
    rta->rta_len = static_cast<std::uint16_t>(RTA_LENGTH(len));
    std::memcpy(RTA_DATA(rta), data, len);
    hdr()->nlmsg_len = static_cast<std::uint32_t>(NLMSG_ALIGN(hdr()->nlmsg_len) + RTA_ALIGN(rta->rta_len));
  }
};

// Sends the request and waits for its acknowledgement; returns the kernel's errno.
Status transact(NlRequest& req, const char* what) {
  UniqueFd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (!fd) return sys_error(std::string("socket(NETLINK_ROUTE) for ") + what);
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (retry_eintr([&] {
        return ::sendto(fd.get(), req.buf, req.hdr()->nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel),
                        sizeof kernel);
      }) < 0)
    return sys_error(std::string("sendto(netlink) for ") + what);
  alignas(NLMSG_ALIGNTO) char reply[4096];
  ssize_t n = retry_eintr([&] { return ::recv(fd.get(), reply, sizeof reply, 0); });
  if (n < 0) return sys_error(std::string("recv(netlink) for ") + what);
  for (auto* h = reinterpret_cast<nlmsghdr*>(reply); NLMSG_OK(h, static_cast<unsigned>(n));
       h = NLMSG_NEXT(h, n)) {
    if (h->nlmsg_type != NLMSG_ERROR) continue;
    auto* err = reinterpret_cast<nlmsgerr*>(NLMSG_DATA(h));
    if (err->error == 0) return {};
    return sys_error(what, -err->error);
  }
  return make_error(std::string(what) + ": no acknowledgement from the kernel");
}

Result<int> ifindex(const std::string& ifname) {
  unsigned idx = ::if_nametoindex(ifname.c_str());
  if (idx == 0) return sys_error("if_nametoindex(" + ifname + ")");
  return static_cast<int>(idx);
}

}  // namespace

bool link_exists(const std::string& ifname) { return ::if_nametoindex(ifname.c_str()) != 0; }

Status link_set_up(const std::string& ifname) {
  auto idx = ifindex(ifname);
  if (!idx) return std::move(idx.error());
  NlRequest req(RTM_NEWLINK, 0, sizeof(ifinfomsg));
  auto* ifi = req.payload<ifinfomsg>();
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = *idx;
  ifi->ifi_flags = IFF_UP;
  ifi->ifi_change = IFF_UP;
  std::string what = "RTM_NEWLINK(" + ifname + ", up)";
  return transact(req, what.c_str());
}

Status addr_add(const std::string& ifname, const std::string& cidr) {
  auto idx = ifindex(ifname);
  if (!idx) return std::move(idx.error());
  auto slash = cidr.find('/');
  std::string ip = cidr.substr(0, slash);
  int prefix = slash == std::string::npos ? 32 : std::atoi(cidr.c_str() + slash + 1);
  in_addr a{};
  if (inet_pton(AF_INET, ip.c_str(), &a) != 1) return make_error("'" + ip + "' is not an IPv4 address", EINVAL);
  NlRequest req(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, sizeof(ifaddrmsg));
  auto* ifa = req.payload<ifaddrmsg>();
  ifa->ifa_family = AF_INET;
  ifa->ifa_prefixlen = static_cast<unsigned char>(prefix);
  ifa->ifa_index = static_cast<unsigned>(*idx);
  ifa->ifa_scope = RT_SCOPE_UNIVERSE;
  req.add_attr(IFA_LOCAL, &a, sizeof a);
  req.add_attr(IFA_ADDRESS, &a, sizeof a);
  std::string what = "RTM_NEWADDR(" + ifname + ", " + cidr + ")";
  auto s = transact(req, what.c_str());
  if (!s && s.error().code == EEXIST) return {};
  return s;
}

Status route_add_default(const std::string& gateway) {
  in_addr gw{};
  if (inet_pton(AF_INET, gateway.c_str(), &gw) != 1)
    return make_error("'" + gateway + "' is not an IPv4 address", EINVAL);
  NlRequest req(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, sizeof(rtmsg));
  auto* rt = req.payload<rtmsg>();
  rt->rtm_family = AF_INET;
  rt->rtm_table = RT_TABLE_MAIN;
  rt->rtm_protocol = RTPROT_BOOT;
  rt->rtm_scope = RT_SCOPE_UNIVERSE;
  rt->rtm_type = RTN_UNICAST;
  req.add_attr(RTA_GATEWAY, &gw, sizeof gw);
  std::string what = "RTM_NEWROUTE(default via " + gateway + ")";
  auto s = transact(req, what.c_str());
  if (!s && s.error().code == EEXIST) return {};
  return s;
}

}  // namespace bp::netproxy
