// netproxy/rtnl.hpp — rtnetlink requests: links up, addresses, routes (no shelling out to ip).
#pragma once

#include <string>

#include "common/result.hpp"

namespace bp::netproxy {

// Sets IFF_UP on the interface.
Status link_set_up(const std::string& ifname);
// Adds an IPv4 address in CIDR form ("10.0.2.15/24"); an existing one is fine.
Status addr_add(const std::string& ifname, const std::string& cidr);
// Adds the IPv4 default route through gateway; an existing one is fine.
Status route_add_default(const std::string& gateway);
// True when the interface exists.
bool link_exists(const std::string& ifname);

}  // namespace bp::netproxy
