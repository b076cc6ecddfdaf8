// storage/s3_xml.cpp — the S3 API's XML bodies. S3 answers with small, flat documents of
// known shape, so a reader that reports each element's path and text at its end tag is
// all that is needed: no attributes, namespaces only stripped, no DTDs.
#include "storage/s3_xml.hpp"

#include <cerrno>
#include <charconv>
#include <functional>

namespace bp::storage {

namespace {

// Appends code point cp as UTF-8.
void append_utf8(std::string& out, unsigned long cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Appends character data with its entity references replaced.
Status append_text(std::string& out, std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    if (s[i] != '&') {
      out += s[i++];
      continue;
    }
    std::size_t semi = s.find(';', i);
    if (semi == std::string_view::npos) return make_error("malformed XML: unterminated entity", EIO);
    std::string_view ent = s.substr(i + 1, semi - i - 1);
    if (ent == "amp") out += '&';
    else if (ent == "lt") out += '<';
    else if (ent == "gt") out += '>';
    else if (ent == "quot") out += '"';
    else if (ent == "apos") out += '\'';
    else if (ent.size() > 1 && ent[0] == '#') {
      bool hex = ent[1] == 'x' || ent[1] == 'X';
      std::string_view digits = ent.substr(hex ? 2 : 1);
      unsigned long cp = 0;
      auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), cp, hex ? 16 : 10);
      if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || cp > 0x10FFFF)
        return make_error("malformed XML: bad character reference &" + std::string(ent) + ";", EIO);
      append_utf8(out, cp);
    } else {
      return make_error("malformed XML: unknown entity &" + std::string(ent) + ";", EIO);
    }
    i = semi + 1;
  }
  return {};
}

// Calls on_end(path, text) at every end tag, path being the element names from the root
// joined by '/' ("ListBucketResult/Contents/Key") and text the element's own character
// data (meaningful for leaves).
using OnEnd = std::function<void(std::string_view path, std::string_view text)>;

Status walk(std::string_view x, const OnEnd& on_end) {
  std::string path, text;
  std::vector<std::size_t> lengths;  // path's length before each open element
  auto skip_to = [&](std::size_t from, std::string_view end) -> std::size_t {
    std::size_t at = x.find(end, from);
    return at == std::string_view::npos ? at : at + end.size();
  };
  std::size_t i = 0;
  while (i < x.size()) {
    if (x[i] != '<') {
      std::size_t lt = x.find('<', i);
      if (lt == std::string_view::npos) lt = x.size();
      if (!lengths.empty())
        if (auto s = append_text(text, x.substr(i, lt - i)); !s) return s;
      i = lt;
      continue;
    }
    std::string_view rest = x.substr(i);
    std::size_t next;
    if (rest.starts_with("<?")) {
      next = skip_to(i, "?>");
    } else if (rest.starts_with("<!--")) {
      next = skip_to(i, "-->");
    } else if (rest.starts_with("<![CDATA[")) {
      next = skip_to(i, "]]>");
      if (next != std::string_view::npos) text.append(x.substr(i + 9, next - 3 - (i + 9)));
    } else if (rest.starts_with("<!")) {
      next = skip_to(i, ">");  // DOCTYPE: S3 sends none; internal subsets are not supported
    } else {
      std::size_t gt = x.find('>', i);
      if (gt == std::string_view::npos) return make_error("malformed XML: unterminated tag", EIO);
      bool closing = x[i + 1] == '/';
      bool empty = !closing && x[gt - 1] == '/';
      std::string_view tag = x.substr(i + (closing ? 2 : 1), gt - i - (closing ? 2 : 1) - (empty ? 1 : 0));
      std::string_view name = tag.substr(0, tag.find_first_of(" \t\r\n"));
      if (auto colon = name.find(':'); colon != std::string_view::npos) name.remove_prefix(colon + 1);
      if (name.empty()) return make_error("malformed XML: empty tag name", EIO);
      if (closing) {
        if (lengths.empty() || std::string_view(path).substr(lengths.back() + (lengths.size() > 1)) != name)
          return make_error("malformed XML: unexpected </" + std::string(name) + ">", EIO);
        on_end(path, text);
        path.resize(lengths.back());
        lengths.pop_back();
      } else {
        lengths.push_back(path.size());
        if (!path.empty()) path += '/';
        path += name;
        text.clear();
        if (empty) {
          on_end(path, "");
          path.resize(lengths.back());
          lengths.pop_back();
        }
      }
      i = gt + 1;
      continue;
    }
    if (next == std::string_view::npos) return make_error("malformed XML: unterminated markup", EIO);
    i = next;
  }
  if (!lengths.empty()) return make_error("malformed XML: <" + path + "> is not closed", EIO);
  return {};
}

// S3 quotes ETags ("\"abc\""); the interface's are bare.
std::string unquote(std::string_view s) {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  return std::string(s);
}

}  // namespace

Result<ListPage> parse_list_page(std::string_view xml) {
  ListPage page;
  ObjectInfo cur;
  bool root_ok = false, size_ok = true;
  auto s = walk(xml, [&](std::string_view path, std::string_view text) {
    if (path == "ListBucketResult") root_ok = true;
    else if (path == "ListBucketResult/IsTruncated") page.truncated = text == "true";
    else if (path == "ListBucketResult/NextContinuationToken") page.next_token = text;
    else if (path == "ListBucketResult/Contents/Key") cur.key = text;
    else if (path == "ListBucketResult/Contents/ETag") cur.etag = unquote(text);
    else if (path == "ListBucketResult/Contents/Size") {
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), cur.size);
      size_ok = size_ok && ec == std::errc() && end == text.data() + text.size();
    } else if (path == "ListBucketResult/Contents") {
      page.objects.push_back(std::move(cur));
      cur = {};
    }
  });
  if (!s) return std::move(s.error()).wrap("ListObjectsV2 response");
  if (!root_ok) return make_error("ListObjectsV2 response: no <ListBucketResult>", EIO);
  if (!size_ok) return make_error("ListObjectsV2 response: a <Size> is not a number", EIO);
  if (page.truncated && page.next_token.empty())
    return make_error("ListObjectsV2 response: truncated without a NextContinuationToken", EIO);
  return page;
}

Result<std::vector<DeleteFailure>> parse_delete_result(std::string_view xml) {
  std::vector<DeleteFailure> out;
  DeleteFailure cur;
  bool root_ok = false;
  auto s = walk(xml, [&](std::string_view path, std::string_view text) {
    if (path == "DeleteResult") root_ok = true;
    else if (path == "DeleteResult/Error/Key") cur.key = text;
    else if (path == "DeleteResult/Error/Code") cur.code = text;
    else if (path == "DeleteResult/Error/Message") cur.message = text;
    else if (path == "DeleteResult/Error") {
      out.push_back(std::move(cur));
      cur = {};
    }
  });
  if (!s) return std::move(s.error()).wrap("DeleteObjects response");
  if (!root_ok) return make_error("DeleteObjects response: no <DeleteResult>", EIO);
  return out;
}

S3Error parse_error_body(std::string_view xml) {
  S3Error e;
  (void)walk(xml, [&](std::string_view path, std::string_view text) {
    if (path == "Error/Code") e.code = text;
    else if (path == "Error/Message") e.message = text;
    else if (path == "Error/RequestId") e.request_id = text;
  });
  return e;
}

std::string delete_request_body(const std::vector<std::string>& keys) {
  std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Delete><Quiet>true</Quiet>";
  for (const auto& k : keys) out += "<Object><Key>" + xml_escape(k) + "</Key></Object>";
  out += "</Delete>";
  return out;
}

std::string xml_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      // Other control characters cannot appear in XML 1.0 at all, not even as references;
      // a key holding one cannot be deleted in a batch. \t, \n, \r as references survive
      // the server's end-of-line normalisation.
      case '\t': out += "&#9;"; break;
      case '\n': out += "&#10;"; break;
      case '\r': out += "&#13;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace bp::storage
