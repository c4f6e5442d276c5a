// The JSON report of one restored image (schema: docs/pipeline.md).
#include <nlohmann/json.hpp>

#include "face2scene/pipeline.hpp"

namespace face2scene {
namespace {
nlohmann::json or_null(float v) { return v < 0 ? nlohmann::json(nullptr) : nlohmann::json(v); }
}  // namespace

std::string result_to_json(const Face2SceneResult& r, const std::string& input, const std::string& output, int indent) {
  nlohmann::json faces = nlohmann::json::array();
  for (const auto& f : r.faces) {
    nlohmann::json j = {{"index", f.index},
                        {"box", {f.box.x0, f.box.y0, f.box.x1, f.box.y1}},
                        {"detector_score", f.score},
                        {"found_in", f.found_again ? "restored photo" : "photo"},
                        {"detector", f.detector},
                        {"landmarks_ok", f.landmarks_ok},
                        {"status", f.status},
                        {"person", f.person.empty() ? nlohmann::json(nullptr) : nlohmann::json(f.person)},
                        {"pinned", f.pinned},
                        {"match_distance", or_null(f.match_distance)},
                        {"references", f.references},
                        {"identity_distance_before", or_null(f.distance_before)},
                        {"identity_distance_after", or_null(f.distance_after)},
                        {"identity_shift", or_null(f.identity_shift)},
                        {"restorer", f.restorer.empty() ? nlohmann::json(nullptr) : nlohmann::json(f.restorer)},
                        {"native_side", f.native_side},
                        {"paste_side", f.paste_side},
                        {"pasted", f.status == "restored" && f.paste_side > 0},
                        {"detail_transfer", f.detail_transfer},
                        {"code_weight", f.code_weight}};
    if (f.degradation_read) j["degradation"] = f.degradation.describe();
    faces.push_back(j);
  }
  nlohmann::json deg = {{"words", r.degradation_words}};
  if (r.face_code) {
    deg["blur_sigma"] = r.degradation.blur_sigma;
    deg["noise_sigma"] = r.degradation.noise_sigma;
    deg["poisson"] = r.degradation.poisson;
    deg["jpeg_quality"] = r.degradation.jpeg_quality;
    deg["scale"] = r.degradation.scale;
  }
  const auto& t = r.timings;
  nlohmann::json doc = {{"input", input},
                        {"output", output},
                        {"width", r.image.width},
                        {"height", r.image.height},
                        {"scale", r.output_scale},
                        {"faces_detected", r.faces_detected},
                        {"faces_found_again", r.faces_found_again},
                        {"faces_restored", r.faces_restored},
                        {"face_code", r.face_code},
                        {"code_rule", r.code_rule},
                        {"degradation", deg},
                        {"models", r.models},
                        {"timings_s",
                         {{"detect", t.detect},
                          {"align", t.align},
                          {"identity", t.identity},
                          {"ref_fr", t.ref_fr},
                          {"fadex", t.fadex},
                          {"restorer", t.restorer},
                          {"paste", t.paste},
                          {"total", t.total}}},
                        {"warnings", r.warnings},
                        {"faces", faces}};
  return doc.dump(indent);
}

}  // namespace face2scene
