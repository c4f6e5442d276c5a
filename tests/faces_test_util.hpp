// Shared by the face tests: detection needs dlib and its landmark model, both absent on the GPU
// machine, so tests that detect skip there.
#pragma once

#include <gtest/gtest.h>

#include "face2scene/core.hpp"
#include "face2scene/faces.hpp"

#define F2S_REQUIRE_DETECTOR()                                                                      \
  do {                                                                                              \
    if (!::face2scene::face_detection_available()) GTEST_SKIP() << "built without dlib";            \
    if (!::face2scene::file_exists(::face2scene::face_model_dir() +                                 \
                                   "/shape_predictor_68_face_landmarks.dat"))                       \
      GTEST_SKIP() << "no shape_predictor_68_face_landmarks.dat in " << ::face2scene::face_model_dir(); \
  } while (0)
